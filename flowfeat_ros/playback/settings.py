"""Parameters of video_publisher, declared once (see flowfeat_core.settings); all read-only."""

from __future__ import annotations

from dataclasses import dataclass

from flowfeat_core.settings import setting
from flowfeat_ros.qos import RELIABILITY_CHOICES


@dataclass(frozen=True)
class PlaybackSettings:
    """What video_publisher plays and how it presents it as a camera."""

    source: str = setting("", "video file, image folder or rosbag2 directory (required)",
                          read_only=True)
    bag_topic: str = setting("", "image topic to play from a bag (default: the one with most "
                             "frames)", read_only=True)
    rate: float = setting(0.0, "frames per second (0: the source's rate)", low=0.0, high=1000.0,
                          read_only=True)
    loop: bool = setting(False, "restart at the end of the source", read_only=True)
    max_frames: int = setting(0, "stop after this many frames (0: no limit)", low=0,
                              high=2**31 - 1, read_only=True)
    width: int = setting(0, "output width (0: keep / keep aspect)", low=0, high=16384,
                         read_only=True)
    height: int = setting(0, "output height (0: keep / keep aspect)", low=0, high=16384,
                          read_only=True)
    encoding: str = setting("rgb8", "raw image encoding", choices=("rgb8", "bgr8"),
                            read_only=True)
    frame_id: str = setting("camera_optical_frame", "header.frame_id", read_only=True)
    fov_deg: float = setting(60.0, "horizontal field of view of the synthetic pinhole", low=1.0,
                             high=179.0, read_only=True)
    calibration_file: str = setting("", "camera_calibration YAML (overrides fov_deg)",
                                    read_only=True)
    compressed: bool = setting(False, "also publish JPEG on camera/image_raw/compressed",
                               read_only=True)
    jpeg_quality: int = setting(90, "JPEG quality", low=1, high=100, read_only=True)
    # REP 2003: camera drivers publish with the system default QoS (reliable); subscribers pick
    # best effort (sensor data) or reliable and both match a reliable publisher.
    qos_reliability: str = setting("reliable", "publisher QoS: reliable (REP 2003 driver "
                                   "default) or best_effort", choices=RELIABILITY_CHOICES,
                                   read_only=True)
    wait_for_subscribers: int = setting(0, "hold the first frame until every output topic has "
                                        "this many subscribers", low=0, high=1000,
                                        read_only=True)
