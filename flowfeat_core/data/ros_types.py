"""The one rosbags type store every bag reader and writer here uses: ROS 2 Kilted's message
definitions (sensor_msgs Image, CompressedImage and CameraInfo are identical from Humble on, so
bags of any of these distributions read the same)."""

from __future__ import annotations

from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_KILTED)


def header_stamp_ns(msg: object) -> int:
    """A rosbags message's header stamp in nanoseconds."""
    stamp = msg.header.stamp  # type: ignore[attr-defined]
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
