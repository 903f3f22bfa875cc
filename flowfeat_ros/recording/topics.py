"""Which ROS message type a recorded topic carries, inferred from its name."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
ODOMETRY = "nav_msgs/msg/Odometry"


@dataclass(frozen=True)
class TopicSpec:
    """A recorded topic and its message type name (``pkg/msg/Type``)."""

    name: str
    msgtype: str

    @property
    def is_image(self) -> bool:
        """True for Image and CompressedImage topics (the ones the motion gate sees)."""
        return self.msgtype in (IMAGE, COMPRESSED_IMAGE)

    @property
    def rate_capped(self) -> bool:
        """Odometry is kept at its full rate: it is small, and depth from motion interpolates
        the camera's pose at each kept frame's stamp from it."""
        return self.msgtype != ODOMETRY


def classify_topic(name: str) -> TopicSpec:
    """``.../compressed`` -> CompressedImage, ``.../camera_info`` -> CameraInfo, a name whose
    last part is ``odom`` or contains ``odometry`` (``/odom``, ``/odometry/filtered``,
    ``/wheel/odometry``) -> nav_msgs/Odometry, else Image."""
    if not name or name.endswith("/") or " " in name:
        raise ValueError(f"invalid topic name {name!r}")
    last = name.rsplit("/", 1)[-1]
    if last == "compressed":
        return TopicSpec(name, COMPRESSED_IMAGE)
    if last == "camera_info":
        return TopicSpec(name, CAMERA_INFO)
    if last == "odom" or "odometry" in name.split("/"):
        return TopicSpec(name, ODOMETRY)
    return TopicSpec(name, IMAGE)
