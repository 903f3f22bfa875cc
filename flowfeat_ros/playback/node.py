"""``video_publisher`` node: plays a video file, an image folder or a rosbag2 image topic as a camera.

Publishes ``camera/image_raw`` (sensor_msgs/Image, rgb8 or bgr8), ``camera/camera_info`` with the
same stamp and frame_id, and optionally ``camera/image_raw/compressed`` (JPEG), reliable like a
camera driver (REP 2003). Stamps come from
the node clock (so ``use_sim_time`` works); frames are paced by a timer at the source frame rate
or at ``rate``. Example:
``video_publisher --ros-args -p source:=/usr/share/doc/opencv-doc/examples/data/vtest.avi``
"""

from __future__ import annotations

from pathlib import Path

import cv2
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from flowfeat_core.data.image_codec import encode_compressed
from flowfeat_core.data.image_size import requested_size
from flowfeat_ros.image_conversion import rgb8_to_msg, scale_camera_info
from flowfeat_ros.parameter_declarations import declare_settings
from flowfeat_ros.playback.frame_source import (
    FrameLoader,
    FrameSource,
    load_calibration,
    pinhole_camera_info,
)
from flowfeat_ros.playback.settings import PlaybackSettings
from flowfeat_ros.qos import qos_profile


class VideoPublisher(Node):
    """Publishes a FrameSource as a camera; ``finished`` turns True at the end of the source."""

    def __init__(self) -> None:
        """Declare parameters, open the source, create publishers and the frame timer."""
        super().__init__("video_publisher")
        p = declare_settings(self, PlaybackSettings)
        if not p.source:
            raise ValueError("parameter 'source' is required (video file, image folder or bag)")
        self.params = p
        self.source = FrameSource(p.source, p.bag_topic)
        rate = p.rate or self.source.fps
        if not rate:
            raise ValueError(f"{self.source.path} has no frame rate; set the 'rate' parameter")
        self.calibration = (load_calibration(Path(p.calibration_file).expanduser())
                            if p.calibration_file else None)
        qos = qos_profile(p.qos_reliability, 5)
        self.image_pub = self.create_publisher(Image, "camera/image_raw", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", qos)
        self.jpeg_pub = (self.create_publisher(CompressedImage, "camera/image_raw/compressed", qos)
                         if p.compressed else None)
        self.frames = self.source.frames()
        self.published = 0
        self.finished = False
        self._info_template: CameraInfo | None = None
        self.timer = self.create_timer(1.0 / rate, self._publish_next)
        self.get_logger().info(f"playing {self.source.path} at {rate:.2f} Hz on "
                               f"{self.image_pub.topic_name}")

    def _next_frame(self) -> FrameLoader | None:
        loader = next(self.frames, None)
        if loader is None and self.params.loop and self.published:
            self.frames = self.source.frames()
            loader = next(self.frames, None)
        return loader

    def _camera_info(self, width: int, height: int) -> CameraInfo:
        if self._info_template is None or (self._info_template.width,
                                           self._info_template.height) != (width, height):
            if self.calibration is None:
                self._info_template = pinhole_camera_info(width, height, self.params.fov_deg)
            else:
                self._info_template = scale_camera_info(self.calibration, width, height)
        return self._info_template

    def _finish(self, reason: str) -> None:
        self.timer.cancel()
        self.finished = True
        self.get_logger().info(f"{reason} after {self.published} frames")

    def _subscribers_ready(self) -> bool:
        publishers = [self.image_pub, self.info_pub, self.jpeg_pub]
        wanted = self.params.wait_for_subscribers
        return all(p.get_subscription_count() >= wanted for p in publishers if p is not None)

    def _publish_next(self) -> None:
        if self.published == 0 and not self._subscribers_ready():
            return
        max_frames = self.params.max_frames
        if max_frames and self.published >= max_frames:
            self._finish("max_frames reached")
            return
        loader = self._next_frame()
        if loader is None:
            self._finish("end of source")
            return
        try:
            rgb = loader()
        except ValueError as error:  # includes ImageDecodeError
            self.get_logger().warning(f"skipping a frame: {error}", throttle_duration_sec=5.0)
            return
        height, width = requested_size(self.params.width, self.params.height, rgb.shape[:2])
        if (width, height) != (rgb.shape[1], rgb.shape[0]):
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.params.frame_id)
        pixels = rgb if self.params.encoding == "rgb8" else rgb[:, :, ::-1]
        self.image_pub.publish(rgb8_to_msg(pixels, header, self.params.encoding))
        info = self._camera_info(width, height)
        info.header = header
        self.info_pub.publish(info)
        if self.jpeg_pub is not None:
            jpeg = CompressedImage(header=header,
                                   format=f"{self.params.encoding}; jpeg compressed bgr8")
            jpeg.data = encode_compressed(rgb, "jpeg", self.params.jpeg_quality)
            self.jpeg_pub.publish(jpeg)
        self.published += 1

