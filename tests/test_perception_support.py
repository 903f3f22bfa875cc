"""Shared helpers of the perception tests (this module holds no tests): a perception node in a
separate process, a test-side rclpy peer, real vtest.avi frames and output collectors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import SetParametersResult
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_peer import isolated_test_node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from flowfeat_core.hub.checkpoint import save_checkpoint
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_ros.image_conversion import rgb8_to_msg
from flowfeat_ros.playback.frame_source import pinhole_camera_info

REPO = Path(__file__).resolve().parents[1]
VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CONFIG = REPO / "config" / "perception.yaml"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
OUTPUT_TOPICS = ("flowfeat/features", "flowfeat/features/pca", "flowfeat/camera_info")


def read_frames(count: int, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """The first ``count`` frames of vtest.avi as RGB resized to ``size`` (width, height)."""
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        assert ok, f"cannot read {VIDEO}"
        small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def make_checkpoint(path: Path) -> Path:
    """The real pretrained embedded encoder with a freshly initialised (random) decoder."""
    return save_checkpoint(path, FlowFeat.embedded_default())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "flowfeat.safetensors")


@pytest.fixture(scope="module")
def peer() -> Iterator[Node]:
    """A test-side rclpy node in its own context; ``peer.test_executor`` spins it."""
    yield from isolated_test_node("perception_test_peer")


class PerceptionProcess:
    """``python -m flowfeat_ros.perception_node`` with the repo config plus ``-p`` overrides."""

    def __init__(self, log: Path, params: dict[str, str], namespace: str, *extra: str,
                 environ: dict[str, str] | None = None) -> None:
        self.log = log
        args = [sys.executable, "-m", "flowfeat_ros.perception_node", "--ros-args",
                "--params-file", str(CONFIG), "-r", f"__ns:={namespace}", *extra]
        for name, value in params.items():
            args += ["-p", f"{name}:={value}"]
        env = dict(environ or os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        with log.open("w") as log_file:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log_file,
                                         stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGINT, then wait; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def base_params(checkpoint: Path, **overrides: object) -> dict[str, str]:
    """Small, fast settings: 160x120 network input, reliable input QoS with depth 5, eager
    PyTorch (the default ``auto`` would compile in the background and slow every other test),
    no depth probe (the shipped one belongs to the default model, not to the test's)."""
    params = {"checkpoint": str(checkpoint), "input_width": "160", "input_height": "120",
              "backend": "torch", "depth_probe": "''",  # YAML for ''
              "qos_reliability": "reliable", "qos_depth": "5", "diagnostics_period_s": "0.5",
              "warn_period_s": "0.5"}
    params.update({name: str(value) for name, value in overrides.items()})
    return params


def spin_until(peer: Node, condition: Callable[[], bool], timeout: float, what: str,
               node: PerceptionProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = node.output() if node else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log}")
        peer.test_executor.spin_once(timeout_sec=0.02)


def spin_for(peer: Node, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peer.test_executor.spin_once(timeout_sec=0.01)


def stream_until(peer: Node, send: Callable[[np.ndarray], object], frames: list[np.ndarray],
                 condition: Callable[[], bool], timeout: float, node: PerceptionProcess,
                 pause_s: float = 0.05) -> list[float]:
    """``send`` the frames in turn, one every ``pause_s``, until ``condition()``; returns the
    send times. The node's mailbox keeps only the newest frame, so a test that needs N outputs
    keeps sending until they came out instead of sending a fixed burst (a deadline, not a speed
    check)."""
    deadline = time.monotonic() + timeout
    sent = []
    while not condition():
        assert time.monotonic() < deadline, f"condition not met in {timeout} s\n{node.output()}"
        send(frames[len(sent) % len(frames)])
        sent.append(time.monotonic())
        spin_for(peer, pause_s)
    return sent


def stamp_of(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Camera:
    """Publishers of a camera's image and camera_info under ``prefix``."""

    def __init__(self, peer: Node, prefix: str, qos: QoSProfile = RELIABLE) -> None:
        self.peer = peer
        self.image = peer.create_publisher(Image, f"{prefix}/image", qos)
        self.info = peer.create_publisher(CameraInfo, f"{prefix}/camera_info", qos)
        self.count = 0

    def header(self, frame_id: str = "cam") -> Header:
        self.count += 1
        now = self.peer.get_clock().now().to_msg()
        return Header(stamp=Time(sec=now.sec, nanosec=now.nanosec), frame_id=frame_id)

    def send(self, rgb: np.ndarray, frame_id: str = "cam", info: bool = True) -> Header:
        header = self.header(frame_id)
        if info:
            camera_info = pinhole_camera_info(rgb.shape[1], rgb.shape[0], 60.0)
            camera_info.header = header
            self.info.publish(camera_info)
        self.image.publish(rgb8_to_msg(rgb, header))
        return header


class Outputs:
    """Collects the node's outputs under ``prefix`` (only the topics asked for)."""

    def __init__(self, peer: Node, prefix: str, topics: tuple[str, ...] = OUTPUT_TOPICS) -> None:
        self.messages: dict[str, list] = {topic: [] for topic in topics}
        self.received: dict[str, list[float]] = {topic: [] for topic in topics}
        self.subscriptions = []
        for topic in topics:
            msg_type = {"camera_info": CameraInfo, "points": PointCloud2}.get(
                topic.rsplit("/", 1)[-1], Image)
            self.subscriptions.append(peer.create_subscription(
                msg_type, f"{prefix}/{topic}", self._collector(topic), RELIABLE))

    def _collector(self, topic: str) -> Callable:
        def collect(msg) -> None:
            self.messages[topic].append(msg)
            self.received[topic].append(time.time())
        return collect

    def connected(self) -> bool:
        """True once the node's publisher of every collected topic is matched."""
        return all(sub.get_publisher_count() > 0 for sub in self.subscriptions)

    def count(self, topic: str) -> int:
        return len(self.messages[topic])

    def clear(self) -> None:
        for topic in self.messages:
            self.messages[topic].clear()
            self.received[topic].clear()


class Diagnostics:
    """The latest status ``<node_name>: <kind>`` on /diagnostics (our nodes' convention)."""

    def __init__(self, peer: Node, node_name: str, kind: str = "perception") -> None:
        self.name = f"{node_name}: {kind}"
        self.values: dict[str, str] = {}
        self.message = ""
        self.level = -1
        peer.create_subscription(DiagnosticArray, "/diagnostics", self._on_msg, 10)

    def get(self, key: str) -> str:
        """The value of ``key`` in the latest status ('' before it arrives)."""
        return self.values.get(key, "")

    def _on_msg(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == self.name:
                self.values = {kv.key: kv.value for kv in status.values}
                self.message = status.message
                self.level = int.from_bytes(status.level, "little")


def set_parameters(peer: Node, node_name: str, **values: object) -> list[SetParametersResult]:
    """Set parameters of ``node_name`` through its real set_parameters service."""
    client = peer.create_client(SetParameters, f"{node_name}/set_parameters")
    try:
        spin_until(peer, client.service_is_ready, 20, "the set_parameters service")
        request = SetParameters.Request(parameters=[
            ParameterMsg(name=name, value=Parameter(name, value=value).get_parameter_value())
            for name, value in values.items()])
        future = client.call_async(request)
        spin_until(peer, future.done, 20, "set_parameters")
        return list(future.result().results)
    finally:
        peer.destroy_client(client)


def call_trigger(peer: Node, service: str, process) -> Trigger.Response:
    """Call the Trigger service ``service`` and return its reply."""
    client = peer.create_client(Trigger, service)
    try:
        spin_until(peer, client.service_is_ready, 60, service, process)
        future = client.call_async(Trigger.Request())
        spin_until(peer, future.done, 60, f"{service} reply", process)
        return future.result()
    finally:
        peer.destroy_client(client)


def connected_camera(peer: Node, node: PerceptionProcess, prefix: str) -> Camera:
    """A Camera under ``prefix`` once both ends have matched (the node ``<prefix>/perception``
    reports it on /diagnostics): a volatile reader drops what a writer sent before the reader
    itself had matched it, even when the writer already counted the reader."""
    camera = Camera(peer, prefix)
    status = Diagnostics(peer, f"{prefix.rstrip('/')}/perception")
    spin_until(peer, lambda: camera.image.get_subscription_count() > 0
               and int(status.values.get("input_publishers", 0)) > 0, 60,
               "the node and the camera to match", node)
    return camera


def connected_outputs(peer: Node, node: PerceptionProcess, prefix: str,
                      topics: tuple[str, ...] = OUTPUT_TOPICS) -> Outputs:
    """An Outputs collector under ``prefix`` once the node's publishers are matched."""
    collector = Outputs(peer, prefix, topics)
    spin_until(peer, collector.connected, 60, "output connections", node)
    return collector
