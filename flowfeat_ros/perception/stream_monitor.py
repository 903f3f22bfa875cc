"""A subscriber-side view of the perception outputs: receive rate, stamp-to-receive latency and
the node's own /diagnostics (used by the demo and the pipeline benchmark)."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from flowfeat_ros.perception.status_keys import STATUS_KIND

RELIABLE = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
SENSOR_DATA = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


class StreamMonitor:
    """Subscribes to ``topics`` (Image) and /diagnostics; keeps the latest message per topic.
    Camera inputs (topics not under flowfeat/) are read with sensor-data QoS."""

    def __init__(self, node: Node, topics: list[str]) -> None:
        self.node = node
        self.latest: dict[str, Image] = {}
        self.recent: dict[str, deque[Image]] = {t: deque(maxlen=64) for t in topics}
        self.times: dict[str, list[float]] = {t: [] for t in topics}
        self.latencies: dict[str, list[float]] = {t: [] for t in topics}
        self.diagnostics: dict[str, str] = {}
        self.subscriptions = [
            node.create_subscription(Image, t, self._collector(t),
                                     RELIABLE if "flowfeat/" in t else SENSOR_DATA)
            for t in topics]
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _collector(self, topic: str):
        def collect(msg: Image) -> None:
            now = time.time()
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            self.latest[topic] = msg
            self.recent[topic].append(msg)
            self.times[topic].append(now)
            self.latencies[topic].append(now - stamp)
        return collect

    def with_stamp(self, topic: str, stamp: object) -> Image | None:
        """The recently received message on ``topic`` whose header has ``stamp``, if any."""
        return next((msg for msg in reversed(self.recent[topic]) if msg.header.stamp == stamp), None)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(f": {STATUS_KIND}"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def reset(self) -> None:
        """Forget received times and latencies (e.g. after a warm-up)."""
        for topic in self.times:
            self.times[topic].clear()
            self.latencies[topic].clear()

    def rate_hz(self, topic: str) -> float:
        """Messages per second received on ``topic``."""
        times = self.times[topic]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def latency_ms(self, topic: str) -> tuple[float, float]:
        """(median, p95) stamp-to-receive latency on ``topic`` in milliseconds."""
        values = np.array(self.latencies[topic]) * 1e3
        if values.size == 0:
            return float("nan"), float("nan")
        return float(np.median(values)), float(np.percentile(values, 95))
