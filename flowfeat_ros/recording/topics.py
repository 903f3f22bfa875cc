"""Which ROS message type a recorded topic carries, inferred from its name."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class TopicSpec:
    """A recorded topic and its message type name (``pkg/msg/Type``)."""

    name: str
    msgtype: str

    @property
    def is_image(self) -> bool:
        """True for Image and CompressedImage topics (the ones the motion gate and rate cap see)."""
        return self.msgtype != CAMERA_INFO


def classify_topic(name: str) -> TopicSpec:
    """``.../compressed`` -> CompressedImage, ``.../camera_info`` -> CameraInfo, else Image."""
    if not name or name.endswith("/") or " " in name:
        raise ValueError(f"invalid topic name {name!r}")
    last = name.rsplit("/", 1)[-1]
    if last == "compressed":
        return TopicSpec(name, COMPRESSED_IMAGE)
    if last == "camera_info":
        return TopicSpec(name, CAMERA_INFO)
    return TopicSpec(name, IMAGE)
