"""End-to-end tests of the video_publisher node (separate process) with a real rclpy subscriber."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import test_recorder
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from test_recorder import REPO, TYPESTORE, VIDEO, spin_until

from flowfeat_core.data.image_codec import decode_image_message, encode_compressed
from flowfeat_ros.image_conversion import image_msg_to_array
from flowfeat_ros.recording.bag_sequence import BagFormat, BagSequence, SplitLimits
from flowfeat_ros.recording.topics import classify_topic

pytestmark = pytest.mark.ros

ros_node = test_recorder.ros_node  # the shared module-scoped rclpy peer fixture
DATA = VIDEO.parent
QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def run_publisher(namespace: str, *params: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "flowfeat_ros.video_publisher", "--ros-args",
            "-r", f"__ns:=/{namespace}", "-p", "wait_for_subscribers:=1"]
    for param in params:
        args += ["-p", param]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


class Camera:
    """Collects Image, CameraInfo and CompressedImage messages under ``/<namespace>/camera``."""

    def __init__(self, node: Node, namespace: str) -> None:
        self.images: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.jpegs: list[CompressedImage] = []
        base = f"/{namespace}/camera"
        node.create_subscription(Image, f"{base}/image_raw", self.images.append, QOS)
        node.create_subscription(CameraInfo, f"{base}/camera_info", self.infos.append, QOS)
        node.create_subscription(CompressedImage, f"{base}/image_raw/compressed",
                                 self.jpegs.append, QOS)


def finish(node: Node, proc: subprocess.Popen, camera: Camera) -> str:
    """Wait for the publisher to exit at the end of its source, keep receiving meanwhile."""
    try:
        spin_until(node, lambda: proc.poll() is not None, 30, "the publisher to exit")
        spin_until(node, lambda: len(camera.infos) >= len(camera.images), 2, "camera_info")
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=10)[0]
    assert proc.returncode == 0, output
    return output


def assert_publishes_reliable_like_a_driver(node: Node, base: str) -> None:
    """REP 2003: a camera driver offers the system default QoS, which is reliable."""
    topics = [f"{base}/image_raw", f"{base}/camera_info", f"{base}/image_raw/compressed"]
    spin_until(node, lambda: all(node.get_publishers_info_by_topic(t) for t in topics), 20,
               "the publisher's endpoints")
    for topic in topics:
        (info,) = node.get_publishers_info_by_topic(topic)
        assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic


def video_frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    for _ in range(count):
        ok, bgr = capture.read()
        assert ok
        frames.append(cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
    return frames


def test_video_file_frames_arrive_with_matching_camera_info(ros_node):
    camera = Camera(ros_node, "vid")
    proc = run_publisher("vid", f"source:={VIDEO}", "rate:=20.0", "max_frames:=25",
                         "width:=160", "compressed:=true", "fov_deg:=90.0", "frame_id:=cam")
    assert_publishes_reliable_like_a_driver(ros_node, "/vid/camera")
    finish(ros_node, proc, camera)
    expected = video_frames(25, (160, 120))
    assert len(camera.images) == 25
    for msg, frame in zip(camera.images, expected, strict=True):
        np.testing.assert_array_equal(image_msg_to_array(msg), frame)
    image_stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in camera.images]
    info_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in camera.infos}
    assert set(image_stamps) == info_stamps
    assert all(m.header.frame_id == "cam" and m.encoding == "rgb8" for m in camera.images)
    info = camera.infos[-1]
    assert (info.width, info.height, info.header.frame_id) == (160, 120, "cam")
    assert info.k[0] == pytest.approx(80.0) and info.k[4] == pytest.approx(80.0)  # 90 deg fov
    periods = np.diff([s + n * 1e-9 for s, n in image_stamps])
    assert np.median(periods) == pytest.approx(0.05, abs=0.02)  # node-clock stamps at 20 Hz
    assert len(camera.jpegs) == 25
    jpeg_rgb = decode_image_message(camera.jpegs[-1])
    assert np.abs(jpeg_rgb.astype(int) - expected[24]).mean() < 6


def test_image_folder_bgr8_with_calibration(ros_node, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("baboon.jpg", "apple.jpg", "fruits.jpg"):
        shutil.copy(DATA / name, folder / name)
    calibration = tmp_path / "calib.yaml"
    calibration.write_text(
        "image_width: 512\nimage_height: 512\ndistortion_model: plumb_bob\n"
        "camera_matrix: {rows: 3, cols: 3, data: [400, 0, 256, 0, 400, 256, 0, 0, 1]}\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0.1, 0, 0, 0, 0]}\n"
        "projection_matrix: {rows: 3, cols: 4, data: [400, 0, 256, 0, 0, 400, 256, 0, 0, 0, 1, 0]}\n")
    camera = Camera(ros_node, "dir")
    proc = run_publisher("dir", f"source:={folder}", "rate:=5.0", "loop:=true",
                         "max_frames:=8", "height:=128", "encoding:=bgr8",
                         f"calibration_file:={calibration}")
    finish(ros_node, proc, camera)
    assert len(camera.images) == 8  # 3 images, looped
    baboon = cv2.resize(cv2.imread(str(folder / "baboon.jpg")), (128, 128),
                        interpolation=cv2.INTER_AREA)
    for index in (1, 4, 7):  # sorted: apple, baboon, fruits
        np.testing.assert_array_equal(image_msg_to_array(camera.images[index]), baboon)
    assert all(m.encoding == "bgr8" for m in camera.images)
    info = next(m for m in camera.infos if m.width == 128)  # from the square baboon.jpg
    assert info.k[0] == pytest.approx(100.0) and info.d[0] == pytest.approx(0.1)


def test_rosbag_source(ros_node, tmp_path):
    frames = video_frames(6, (96, 72))
    bags = BagSequence(tmp_path, "src", BagFormat(), SplitLimits())
    topic = classify_topic("/rec/image/compressed")
    msg_type = TYPESTORE.types["sensor_msgs/msg/CompressedImage"]
    header_type = TYPESTORE.types["std_msgs/msg/Header"]
    time_type = TYPESTORE.types["builtin_interfaces/msg/Time"]
    for i, frame in enumerate(frames):
        msg = msg_type(header=header_type(stamp=time_type(sec=i, nanosec=0), frame_id="x"),
                       format="png", data=np.frombuffer(encode_compressed(frame, "png"),
                                                         dtype=np.uint8))
        bags.write(topic, TYPESTORE.serialize_cdr(msg, msg_type.__msgtype__), i * 100_000_000)
    bag = bags.close()
    camera = Camera(ros_node, "bag")
    proc = run_publisher("bag", f"source:={bag}")  # 10 Hz, from the bag's timestamps
    output = finish(ros_node, proc, camera)
    assert "at 10.00 Hz" in output
    assert len(camera.images) == 6
    for msg, frame in zip(camera.images, frames, strict=True):
        np.testing.assert_array_equal(image_msg_to_array(msg), frame)  # png: lossless


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (("source:=/no/such/file.avi",), "does not exist"),
        ((f"source:={DATA}", "rate:=0.0"), "no frame rate"),  # an image folder
        ((f"source:={VIDEO}", "encoding:=rgba8"), "encoding must be"),
        ((f"source:={VIDEO}", "width:=-3"), "out of range"),
    ],
)
def test_bad_parameters_exit_with_one_line(params, message):
    proc = run_publisher("bad", *params)
    try:
        output = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
    assert proc.returncode == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("video_publisher: ") and message in lines[0]
