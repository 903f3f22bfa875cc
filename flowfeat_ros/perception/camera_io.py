"""Per-camera topics of the perception node: input subscriptions feeding the frame mailbox and
output publishers that report which outputs anyone subscribes to."""

from __future__ import annotations

import threading

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.event_handler import (
    QoSMessageLostInfo,
    SubscriptionEventCallbacks,
    UnsupportedEventTypeError,
)
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from flowfeat_ros.perception.frame_mailbox import Arrival, FrameMailbox
from flowfeat_ros.perception.input_health import InputLoss
from flowfeat_ros.perception.parameters import PerceptionSettings
from flowfeat_ros.perception.problems import STAMP_JUMP, ProblemReporter

#: output name -> (message type, topic relative to the camera prefix). REP 118: flowfeat/depth is
#: metres (metric probes only); a relative probe's scale-free depth has its own topic.
OUTPUT_TOPICS: dict[str, tuple[type, str]] = {
    "features": (Image, "flowfeat/features"),
    "pca": (Image, "flowfeat/features/pca"),
    "depth": (Image, "flowfeat/depth"),
    "depth_relative": (Image, "flowfeat/depth/relative"),
    "depth_colored": (Image, "flowfeat/depth/colored"),
    "points": (PointCloud2, "flowfeat/points"),
    "segmentation": (Image, "flowfeat/segmentation"),
    "segmentation_overlay": (Image, "flowfeat/segmentation/overlay"),
    "camera_info": (CameraInfo, "flowfeat/camera_info"),
    "track_mask": (Image, "flowfeat/track/mask"),
    "track_overlay": (Image, "flowfeat/track/overlay"),
    "track_objects": (DiagnosticArray, "flowfeat/track/objects"),
}
MODEL_OUTPUTS = frozenset(OUTPUT_TOPICS) - {"camera_info"}


def _topic(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def input_qos(settings: PerceptionSettings) -> QoSProfile:
    """Input QoS: sensor data (best effort, depth 1) unless configured otherwise."""
    reliability = (ReliabilityPolicy.BEST_EFFORT if settings.qos_reliability == "best_effort"
                   else ReliabilityPolicy.RELIABLE)
    return QoSProfile(depth=settings.qos_depth, reliability=reliability)


class CameraIO:
    """Inputs ``<camera>/image``, ``<camera>/image/compressed``, ``<camera>/camera_info`` and
    outputs ``<camera>/flowfeat/*`` of one camera (no prefix for the single-camera setup)."""

    def __init__(self, node: Node, camera: str, settings: PerceptionSettings,
                 mailbox: FrameMailbox, problems: ProblemReporter) -> None:
        self.name = camera
        self.label = f"camera {camera!r}" if camera else "camera"
        self.latest_info: CameraInfo | None = None
        self.loss = InputLoss()
        self.loss_detection = True
        qos = input_qos(settings)

        def store(msg: Image | CompressedImage) -> None:
            self.loss.record_received()
            if mailbox.put(camera, msg) is Arrival.STAMP_JUMP:
                problems.warning(STAMP_JUMP, self.label, "stamp jumped back by more than the "
                                 "reorder window (the previous stamp was in the future, or the "
                                 "camera clock was reset); following the new stamps")

        self.image_subscriptions: list[Subscription] = []
        if settings.input_transport in ("raw", "both"):
            self._subscribe_images(node, Image, _topic(camera, "image"), store, qos)
        if settings.input_transport in ("compressed", "both"):
            self._subscribe_images(node, CompressedImage, _topic(camera, "image/compressed"),
                                   store, qos)
        node.create_subscription(CameraInfo, _topic(camera, "camera_info"), self._on_info, qos)
        self._node = node
        self._output_qos = QoSProfile(depth=settings.output_qos_depth,
                                      reliability=ReliabilityPolicy.RELIABLE)
        self._publishers_lock = threading.Lock()  # the loader thread advertises, the worker publishes
        self.publishers: dict[str, Publisher] = {}

    def advertise(self, outputs: frozenset[str]) -> None:
        """Offer exactly ``outputs`` (names of OUTPUT_TOPICS): publishers are created for new
        ones and destroyed for the others (a probe was unloaded)."""
        with self._publishers_lock:
            for name in set(self.publishers) - outputs:
                self._node.destroy_publisher(self.publishers.pop(name))
            for name in sorted(outputs - set(self.publishers)):
                msg_type, topic = OUTPUT_TOPICS[name]
                self.publishers[name] = self._node.create_publisher(
                    msg_type, _topic(self.name, topic), self._output_qos)

    def _subscribe_images(self, node: Node, msg_type: type, topic: str, store, qos) -> None:
        """Subscribe with the middleware's lost-sample reports when it has them."""
        def lost(info: QoSMessageLostInfo) -> None:
            self.loss.record_lost(info.total_count_change)

        try:
            subscription = node.create_subscription(
                msg_type, topic, store, qos,
                event_callbacks=SubscriptionEventCallbacks(message_lost=lost))
        except UnsupportedEventTypeError:
            self.loss_detection = False
            subscription = node.create_subscription(msg_type, topic, store, qos)
        self.image_subscriptions.append(subscription)

    def publisher_count(self) -> int:
        """Image publishers this node's subscriptions have matched (0: no camera, or one whose
        QoS is incompatible)."""
        return sum(sub.get_publisher_count() for sub in self.image_subscriptions)

    def _on_info(self, msg: CameraInfo) -> None:
        self.latest_info = msg

    def wanted(self) -> frozenset[str]:
        """Outputs that at least one subscriber listens to (the others are not computed)."""
        with self._publishers_lock:
            return frozenset(name for name, pub in self.publishers.items()
                             if pub.get_subscription_count() > 0)

    def publish(self, name: str, msg: Image | CameraInfo | PointCloud2 | DiagnosticArray) -> None:
        """Publish ``msg`` on output ``name`` (dropped if it stopped being advertised meanwhile)."""
        with self._publishers_lock:
            publisher = self.publishers.get(name)
            if publisher is not None:
                publisher.publish(msg)
