"""Parameters of the recorder node, declared once (see flowfeat_core.settings); all read-only."""

from __future__ import annotations

from dataclasses import dataclass

from flowfeat_core.settings import setting
from flowfeat_ros.qos import RELIABILITY_CHOICES
from flowfeat_ros.recording.bag_sequence import COMPRESSIONS, STORAGES


@dataclass(frozen=True)
class RecorderSettings:
    """Where and what the recorder writes, and its disk limits."""

    output_dir: str = setting("~/flowfeat_bags", "directory receiving one sub-directory per bag",
                              read_only=True)
    bag_prefix: str = setting("flowfeat", "bag directory name prefix; only bags with it are "
                              "deleted by the quota", read_only=True)
    topics: tuple[str, ...] = setting(("image", "camera_info"), "topics to record (relative "
                                      "names follow remapping, as perception's do): "
                                      "'.../compressed' = CompressedImage, '.../camera_info' = "
                                      "CameraInfo, '.../odom' or '.../odometry/...' = "
                                      "nav_msgs/Odometry (full rate; gives depth from motion "
                                      "metric scale), anything else = Image", read_only=True)
    storage: str = setting("mcap", "rosbag2 storage plugin", choices=tuple(STORAGES),
                           read_only=True)
    compression: str = setting("none", "mcap: chunk compression; sqlite3: per message",
                               choices=COMPRESSIONS, read_only=True)
    max_bag_size_mb: float = setting(1024.0, "split when a bag's payload exceeds this (0 = off)",
                                     low=0.0, high=1.0e6, read_only=True)
    max_bag_duration_s: float = setting(300.0, "split after this many seconds (0 = off)", low=0.0,
                                        high=86400.0, read_only=True)
    quota_mb: float = setting(20000.0, "delete the oldest bags beyond this total (0 = off)",
                              low=0.0, high=1.0e9, read_only=True)
    min_free_mb: float = setting(1024.0, "pause recording below this free space", low=0.0,
                                 high=1.0e9, read_only=True)
    max_rate_hz: float = setting(5.0, "messages kept per second per image or camera_info topic "
                                 "(0 = all)",
                                 low=0.0, high=1000.0, read_only=True)
    motion_threshold: float = setting(2.0, "mean abs grey-level change (0-255) vs. the last kept "
                                      "frame to keep one (0 = keep all)", low=0.0, high=255.0,
                                      read_only=True)
    flush_interval_s: float = setting(1.0, "write buffered data to disk this often (a crash "
                                      "loses at most this much)", low=0.1, high=60.0,
                                      read_only=True)
    qos_reliability: str = setting("best_effort", "subscription QoS: best_effort (sensor data) "
                                   "or reliable", choices=RELIABILITY_CHOICES, read_only=True)
    qos_depth: int = setting(10, "subscription queue depth", low=1, high=1000, read_only=True)
    start_recording: bool = setting(True, "record from start-up (else wait for "
                                    "~/set_recording)", read_only=True)
