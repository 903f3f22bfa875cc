"""``video_publisher`` node: plays a video file, an image folder or a rosbag2 image topic as a camera.

Publishes ``camera/image_raw`` (sensor_msgs/Image, rgb8 or bgr8), ``camera/camera_info`` with the
same stamp and frame_id, and optionally ``camera/image_raw/compressed`` (JPEG). Stamps come from
the node clock (so ``use_sim_time`` works); frames are paced by a timer at the source frame rate
or at ``rate``. Example:
``video_publisher --ros-args -p source:=/usr/share/doc/opencv-doc/examples/data/vtest.avi``
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import rclpy
import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from flowfeat_core.data.image_codec import decode_image_message, encode_compressed
from flowfeat_ros.image_conversion import rgb8_to_msg, scale_camera_info
from flowfeat_ros.node_main import declare_parameter_table, run_node
from flowfeat_ros.recording.motion_gate import TYPESTORE
from flowfeat_ros.recording.topics import COMPRESSED_IMAGE, IMAGE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


# Sources yield one loader per frame, so a frame that fails to decode is skipped (the loader
# raises ValueError) without ending the iteration.
FrameLoader = Callable[[], np.ndarray]


def _video_frames(path: Path) -> Iterator[FrameLoader]:
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield lambda rgb=rgb: rgb
    finally:
        capture.release()


def _read_image(file: Path) -> np.ndarray:
    bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {file}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _folder_frames(files: list[Path]) -> Iterator[FrameLoader]:
    for file in files:
        yield lambda file=file: _read_image(file)


def _bag_frames(path: Path, topic: str) -> Iterator[FrameLoader]:
    with Reader(path) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        for connection, _, raw in reader.messages(connections=connections):
            msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            yield lambda msg=msg: decode_image_message(msg)


class FrameSource:
    """A replayable sequence of RGB frames with its native frame rate (None if it has none)."""

    def __init__(self, source: str, bag_topic: str = "") -> None:
        """Open ``source``: a video file, a folder of images, or a rosbag2 directory."""
        path = Path(source).expanduser()
        self.path = path
        self.fps: float | None = None
        if not path.exists():
            raise ValueError(f"source {source!r} does not exist")
        if (path / "metadata.yaml").is_file():
            self.bag_topic = self._pick_bag_topic(path, bag_topic)
        elif path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise ValueError(f"folder {path} holds no {sorted(IMAGE_SUFFIXES)} images")
        else:
            capture = cv2.VideoCapture(str(path))
            if not capture.isOpened():
                raise ValueError(f"OpenCV cannot open video {path}")
            fps = capture.get(cv2.CAP_PROP_FPS)
            capture.release()
            self.fps = fps if fps and math.isfinite(fps) and fps > 0 else None

    def _pick_bag_topic(self, path: Path, wanted: str) -> str:
        with Reader(path) as reader:
            images = {c.topic: c for c in reader.connections
                      if c.msgtype in (IMAGE, COMPRESSED_IMAGE)}
            if wanted and wanted not in images:
                raise ValueError(f"bag {path} has no image topic {wanted!r} "
                                 f"(image topics: {sorted(images)})")
            if not images:
                raise ValueError(f"bag {path} has no Image/CompressedImage topic")
            topic = wanted or sorted(images)[0]
            count = images[topic].msgcount
            if count > 1 and reader.duration > 0:
                self.fps = (count - 1) / (reader.duration * 1e-9)
            return topic

    def frames(self) -> Iterator[FrameLoader]:
        """A fresh iterator over loaders of all frames, from the start."""
        if hasattr(self, "bag_topic"):
            return _bag_frames(self.path, self.bag_topic)
        if hasattr(self, "files"):
            return _folder_frames(self.files)
        return _video_frames(self.path)


def pinhole_camera_info(width: int, height: int, fov_deg: float) -> CameraInfo:
    """Distortion-free CameraInfo with horizontal field of view ``fov_deg`` and square pixels."""
    fx = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = np.array([fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0])
    info.r = np.eye(3).ravel()
    info.p = np.array([fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    return info


def load_calibration(path: Path) -> CameraInfo:
    """CameraInfo from a camera_calibration / camera_info_manager YAML file."""
    try:
        data = yaml.safe_load(path.read_text())
        info = CameraInfo(width=int(data["image_width"]), height=int(data["image_height"]),
                          distortion_model=str(data.get("distortion_model", "plumb_bob")))
        info.k = np.array(data["camera_matrix"]["data"], dtype=np.float64)
        info.d = [float(v) for v in data["distortion_coefficients"]["data"]]
        info.r = np.array(data.get("rectification_matrix", {"data": np.eye(3).ravel()})["data"],
                          dtype=np.float64)
        info.p = np.array(data["projection_matrix"]["data"], dtype=np.float64)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AssertionError) as error:
        raise ValueError(f"calibration file {path}: {type(error).__name__}: {error}") from None
    return info


def _descriptor(description: str, low: float | None = None, high: float | None = None,
                integer: bool = False) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description, read_only=True)
    if integer:
        descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
    elif low is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high)]
    return descriptor


PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "source": ("", _descriptor("video file, image folder or rosbag2 directory")),
    "bag_topic": ("", _descriptor("image topic to play from a bag (default: first one)")),
    "rate": (0.0, _descriptor("frames per second (0: the source's rate)", 0.0, 1000.0)),
    "loop": (False, _descriptor("restart at the end of the source")),
    "max_frames": (0, _descriptor("stop after this many frames (0: no limit)", 0, 2**31 - 1,
                                  integer=True)),
    "width": (0, _descriptor("output width (0: keep / keep aspect)", 0, 16384, integer=True)),
    "height": (0, _descriptor("output height (0: keep / keep aspect)", 0, 16384, integer=True)),
    "encoding": ("rgb8", _descriptor("rgb8 or bgr8")),
    "frame_id": ("camera_optical_frame", _descriptor("header.frame_id")),
    "fov_deg": (60.0, _descriptor("horizontal field of view of the synthetic pinhole", 1.0,
                                  179.0)),
    "calibration_file": ("", _descriptor("camera_calibration YAML (overrides fov_deg)")),
    "compressed": (False, _descriptor("also publish JPEG on camera/image_raw/compressed")),
    "jpeg_quality": (90, _descriptor("JPEG quality", 1, 100, integer=True)),
    "qos": ("sensor_data", _descriptor("sensor_data (best effort) or reliable")),
    "wait_for_subscribers": (0, _descriptor(
        "hold the first frame until every output topic has this many subscribers", 0, 1000,
        integer=True)),
}


def _output_size(width: int, height: int, src_w: int, src_h: int) -> tuple[int, int]:
    if width and not height:
        height = max(1, round(src_h * width / src_w))
    elif height and not width:
        width = max(1, round(src_w * height / src_h))
    return (width or src_w, height or src_h)


class VideoPublisher(Node):
    """Publishes a FrameSource as a camera; ``finished`` turns True at the end of the source."""

    def __init__(self) -> None:
        """Declare parameters, open the source, create publishers and the frame timer."""
        super().__init__("video_publisher")
        p = declare_parameter_table(self, PARAMETERS)
        if p["encoding"] not in ("rgb8", "bgr8"):
            raise ValueError(f"encoding must be 'rgb8' or 'bgr8', got {p['encoding']!r}")
        if p["qos"] not in ("sensor_data", "reliable"):
            raise ValueError(f"qos must be 'sensor_data' or 'reliable', got {p['qos']!r}")
        if not p["source"]:
            raise ValueError("parameter 'source' is required (video file, image folder or bag)")
        self.params = p
        self.source = FrameSource(p["source"], p["bag_topic"])
        rate = p["rate"] or self.source.fps
        if not rate:
            raise ValueError(f"{self.source.path} has no frame rate; set the 'rate' parameter")
        self.calibration = (load_calibration(Path(p["calibration_file"]).expanduser())
                            if p["calibration_file"] else None)
        reliability = (ReliabilityPolicy.BEST_EFFORT if p["qos"] == "sensor_data"
                       else ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(depth=5, reliability=reliability)
        self.image_pub = self.create_publisher(Image, "camera/image_raw", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", qos)
        self.jpeg_pub = (self.create_publisher(CompressedImage, "camera/image_raw/compressed", qos)
                         if p["compressed"] else None)
        self.frames = self.source.frames()
        self.published = 0
        self.finished = False
        self._info_template: CameraInfo | None = None
        self.timer = self.create_timer(1.0 / rate, self._publish_next)
        self.get_logger().info(f"playing {self.source.path} at {rate:.2f} Hz on "
                               f"{self.image_pub.topic_name}")

    def _next_frame(self) -> FrameLoader | None:
        loader = next(self.frames, None)
        if loader is None and self.params["loop"] and self.published:
            self.frames = self.source.frames()
            loader = next(self.frames, None)
        return loader

    def _camera_info(self, width: int, height: int) -> CameraInfo:
        if self._info_template is None or (self._info_template.width,
                                           self._info_template.height) != (width, height):
            if self.calibration is None:
                self._info_template = pinhole_camera_info(width, height, self.params["fov_deg"])
            else:
                self._info_template = scale_camera_info(self.calibration, width, height)
        return self._info_template

    def _finish(self, reason: str) -> None:
        self.timer.cancel()
        self.finished = True
        self.get_logger().info(f"{reason} after {self.published} frames")

    def _subscribers_ready(self) -> bool:
        publishers = [self.image_pub, self.info_pub, self.jpeg_pub]
        wanted = self.params["wait_for_subscribers"]
        return all(p.get_subscription_count() >= wanted for p in publishers if p is not None)

    def _publish_next(self) -> None:
        if self.published == 0 and not self._subscribers_ready():
            return
        max_frames = self.params["max_frames"]
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
        width, height = _output_size(self.params["width"], self.params["height"],
                                     rgb.shape[1], rgb.shape[0])
        if (width, height) != (rgb.shape[1], rgb.shape[0]):
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.params["frame_id"])
        pixels = rgb if self.params["encoding"] == "rgb8" else rgb[:, :, ::-1]
        self.image_pub.publish(rgb8_to_msg(pixels, header, self.params["encoding"]))
        info = self._camera_info(width, height)
        info.header = header
        self.info_pub.publish(info)
        if self.jpeg_pub is not None:
            jpeg = CompressedImage(header=header,
                                   format=f"{self.params['encoding']}; jpeg compressed bgr8")
            jpeg.data = encode_compressed(rgb, "jpeg", self.params["jpeg_quality"])
            self.jpeg_pub.publish(jpeg)
        self.published += 1


def _spin_until_finished(node: VideoPublisher) -> None:
    while rclpy.ok() and not node.finished:
        rclpy.spin_once(node, timeout_sec=0.1)


def main(args: list[str] | None = None) -> None:
    """Console entry point: play the source, exit at its end (or run forever with loop)."""
    run_node("video_publisher", VideoPublisher, args, spin=_spin_until_finished)


if __name__ == "__main__":
    main()
