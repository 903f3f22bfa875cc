"""Recorder building blocks on real data: thumbnails and motion gate on vtest.avi frames, rate cap,
bag splitting by duration, quota safety, and recovery of a bag whose writer process was killed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hostile_images import rle_bmp_bomb
from rosbags.rosbag2 import Reader
from test_recorder import REPO, TYPESTORE, VIDEO

from flowfeat_ros.recording.bag_sequence import BagFormat, BagSequence, SplitLimits
from flowfeat_ros.recording.disk_guard import enforce_quota, recorder_bags
from flowfeat_ros.recording.motion_gate import (
    MotionGate,
    RateCap,
    ThumbnailError,
    thumbnail_from_cdr,
)
from flowfeat_ros.recording.recover import RecoveryError, recover_bag
from flowfeat_ros.recording.topics import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    ODOMETRY,
    classify_topic,
)

T = TYPESTORE.types


def vtest_frames(indices: list[int], size: tuple[int, int]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO))
    frames, index = [], 0
    while len(frames) < len(indices):
        ok, bgr = capture.read()
        assert ok
        if index in indices:
            frames.append(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA))
        index += 1
    return frames


def header(sec: int):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=0),
                                    frame_id="cam")


def raw_cdr(bgr: np.ndarray, sec: int = 0, encoding: str = "bgr8") -> bytes:
    height, width = bgr.shape[:2]
    msg = T[IMAGE](header=header(sec), height=height, width=width, encoding=encoding,
                   is_bigendian=0, step=bgr.strides[0], data=bgr.reshape(-1))
    return bytes(TYPESTORE.serialize_cdr(msg, IMAGE))


def jpeg_cdr(bgr: np.ndarray, sec: int = 0) -> bytes:
    data = cv2.imencode(".jpg", bgr)[1].reshape(-1)
    msg = T[COMPRESSED_IMAGE](header=header(sec), format="jpeg", data=data)
    return bytes(TYPESTORE.serialize_cdr(msg, COMPRESSED_IMAGE))


def test_classify_topic() -> None:
    assert classify_topic("/cam/image_raw/compressed").msgtype == COMPRESSED_IMAGE
    assert classify_topic("/cam/camera_info").msgtype == CAMERA_INFO
    assert not classify_topic("/cam/camera_info").is_image
    for odometry in ("/odom", "/robot/odom", "/odometry/filtered", "/wheel/odometry"):
        spec = classify_topic(odometry)
        assert spec.msgtype == ODOMETRY and not spec.is_image and not spec.rate_capped
    assert classify_topic("/cam/odometer_view").msgtype == IMAGE
    assert classify_topic("/cam/image_rect").msgtype == IMAGE
    with pytest.raises(ValueError, match="invalid topic"):
        classify_topic("/cam/")


def test_motion_gate_on_real_frames_raw_and_jpeg() -> None:
    still, moved = vtest_frames([0, 30], (640, 480))
    for encode in (raw_cdr, jpeg_cdr):
        msgtype = IMAGE if encode is raw_cdr else COMPRESSED_IMAGE
        gate = MotionGate(threshold=3.0)
        decisions = [gate.accept(thumbnail_from_cdr(msgtype, encode(frame)))
                     for frame in (still, still, still, moved, moved)]
        assert decisions == [True, False, False, True, False], encode.__name__
        assert gate.last_score < 1.0


def test_thumbnail_cost_per_640x480_frame() -> None:
    (frame,) = vtest_frames([5], (640, 480))
    costs = {}
    for name, msgtype, data in (("raw bgr8", IMAGE, raw_cdr(frame)),
                                ("jpeg", COMPRESSED_IMAGE, jpeg_cdr(frame))):
        thumb = thumbnail_from_cdr(msgtype, data)
        assert 50 <= thumb.shape[1] <= 90
        start = time.perf_counter()
        for _ in range(20):
            MotionGate(2.0).accept(thumbnail_from_cdr(msgtype, data))
        costs[name] = (time.perf_counter() - start) / 20 * 1e3
    print(f"\nmotion gate cost per 640x480 frame: {costs}")
    assert costs["raw bgr8"] < 2.0 and costs["jpeg"] < 10.0  # far below a 33 ms frame period


def test_unsupported_thumbnails_raise() -> None:
    (frame,) = vtest_frames([0], (64, 48))
    with pytest.raises(ThumbnailError, match="unsupported raw encoding"):
        thumbnail_from_cdr(IMAGE, raw_cdr(frame[:, :, :2].copy(), encoding="yuv422"))
    bad = T[COMPRESSED_IMAGE](header=header(0), format="jpeg", data=np.zeros(10, np.uint8))
    with pytest.raises(ThumbnailError, match="not a jpeg image"):
        thumbnail_from_cdr(COMPRESSED_IMAGE, TYPESTORE.serialize_cdr(bad, COMPRESSED_IMAGE))
    bomb = T[COMPRESSED_IMAGE](header=header(0), format="png",
                               data=np.frombuffer(rle_bmp_bomb(), np.uint8))
    with pytest.raises(ThumbnailError, match="not a png image"):  # recorded, never decoded
        thumbnail_from_cdr(COMPRESSED_IMAGE, TYPESTORE.serialize_cdr(bomb, COMPRESSED_IMAGE))


def test_rate_cap() -> None:
    cap = RateCap(max_rate_hz=5.0)
    kept = []
    for t_ms in range(0, 1000, 50):  # 20 Hz input
        if cap.due(t_ms * 1_000_000):
            cap.mark_kept(t_ms * 1_000_000)
            kept.append(t_ms)
    assert kept == [0, 200, 400, 600, 800]
    assert RateCap(0.0).due(1) and RateCap(0.0).min_period_ns == 0


def test_split_by_duration_and_format_validation(tmp_path: Path) -> None:
    (frame,) = vtest_frames([0], (32, 24))
    bags = BagSequence(tmp_path, "dur", BagFormat("sqlite3"), SplitLimits(max_duration_ns=10**9))
    topic = classify_topic("/c/image_raw")
    for i in range(7):  # one message per 0.4 s -> bags of 0.0-0.8 s, 1.2-2.0 s, 2.4 s
        bags.write(topic, raw_cdr(frame, sec=i), i * 400_000_000)
    bags.close()
    found = recorder_bags(tmp_path, "dur")
    counts = []
    for bag in found:
        with Reader(bag) as reader:
            counts.append(reader.message_count)
    assert counts == [3, 3, 1]
    with pytest.raises(ValueError, match="storage must be one of"):
        BagFormat("rosbag1")
    with pytest.raises(ValueError, match="compression must be one of"):
        BagFormat("mcap", "lz4")


def test_quota_deletes_only_own_oldest_bags(tmp_path: Path) -> None:
    (frame,) = vtest_frames([0], (64, 48))
    bags = BagSequence(tmp_path, "q", BagFormat(), SplitLimits(max_bytes=20_000))
    topic = classify_topic("/c/image_raw")
    for i in range(8):  # about 9 KB each: two per bag
        bags.write(topic, raw_cdr(frame, sec=i), i)
    foreign = tmp_path / "my_precious_data"
    foreign.mkdir()
    (foreign / "big.bin").write_bytes(b"x" * 100_000)
    before = recorder_bags(tmp_path, "q")
    assert len(before) == 4
    deleted = enforce_quota(tmp_path, "q", quota_bytes=5_000, current=bags.current_path)
    assert deleted == before[:3]  # the newest (current) bag is never deleted
    assert recorder_bags(tmp_path, "q") == [bags.current_path]
    assert (foreign / "big.bin").exists()
    bags.close()


CRASHING_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    from flowfeat_ros.recording.bag_sequence import BagFormat, BagSequence, SplitLimits
    from flowfeat_ros.recording.topics import classify_topic
    bags = BagSequence(Path(sys.argv[1]), "crash", BagFormat(sys.argv[2]), SplitLimits())
    topic = classify_topic("/c/camera_info")
    payload = np.zeros(4000, np.uint8).tobytes()
    for i in range(10):
        bags.write(topic, b"\\x00\\x01\\x00\\x00" + i.to_bytes(4, "little") + payload, i)
        if i == 5:
            bags.flush()
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_recover_after_sigkill_keeps_flushed_messages(tmp_path: Path, storage: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path), storage],
                          env=env, timeout=60, capture_output=True)
    assert proc.returncode == -9, proc.stderr
    (bag,) = recorder_bags(tmp_path, "crash")
    assert not (bag / "metadata.yaml").exists()
    assert recover_bag(bag) == 6  # messages 0..5 were flushed, 6..9 were lost with the process
    with Reader(bag) as reader:
        timestamps = [t for _, t, _ in reader.messages()]
        datas = [raw[4:8] for _, _, raw in reader.messages()]
    assert timestamps == list(range(6))
    assert [int.from_bytes(d, "little") for d in datas] == list(range(6))
    with pytest.raises(RecoveryError, match="complete already"):
        recover_bag(bag)
