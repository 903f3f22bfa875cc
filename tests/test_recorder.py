"""End-to-end tests of the recorder node: a real recorder process, real rclpy publishers in this
process sending vtest.avi frames, real bags read back with rosbags and the mcap package."""

from __future__ import annotations

import contextlib
import os
import shutil
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
from mcap.exceptions import EndOfFile
from mcap.reader import NonSeekingReader, make_reader
from mcap_ros2.decoder import DecoderFactory
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_peer import isolated_test_node
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger

from flowfeat_core.data.image_codec import decode_image_message, encode_compressed
from flowfeat_ros.image_conversion import rgb8_to_msg
from flowfeat_ros.recording.recover import recover_bag

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
#: Deadline of a wait for the recorder: a deadline, not a speed check. Under the full suite's
#: load on 2 cores, 20 frames once took longer than 15 s to be kept.
WAIT_S = 60.0
RELIABLE_ARGS = ("qos_reliability:=reliable", "qos_depth:=50", "max_rate_hz:=0.0", "motion_threshold:=0.0")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """First 40 frames of vtest.avi as 160x120 RGB."""
    capture = cv2.VideoCapture(str(VIDEO))
    out = []
    while len(out) < 40:
        ok, bgr = capture.read()
        assert ok, f"cannot read {VIDEO}"
        small = cv2.resize(bgr, (160, 120), interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    capture.release()
    return out


@pytest.fixture(scope="module")
def ros_node() -> Iterator[Node]:
    """A test-side rclpy node in its own context, with its executor as ``node.test_executor``."""
    yield from isolated_test_node("recorder_test_peer")


class Recorder:
    """A recorder node running in a separate process, with its log captured to a file."""

    def __init__(self, out_dir: Path, log: Path, params: tuple[str, ...],
                 namespace: str = "", remaps: tuple[str, ...] = ()) -> None:
        self.out_dir = out_dir
        self.log = log
        args = [sys.executable, "-m", "flowfeat_ros.recorder_node", "--ros-args",
                "-p", f"output_dir:={out_dir}", *(["-r", f"__ns:={namespace}"] if namespace else [])]
        for param in params:
            args += ["-p", param]
        for remap in remaps:
            args += ["-r", remap]
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        with log.open("w") as log_file:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log_file,
                                         stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Send ``sig`` and wait for the process to exit; returns its exit code."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=15)

    def bags(self) -> list[Path]:
        return sorted(p for p in self.out_dir.iterdir() if p.is_dir())

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def start_recorder(tmp_path: Path) -> Iterator[Callable[..., Recorder]]:
    """Factory starting recorder processes; any still running at the end are killed."""
    started: list[Recorder] = []

    def start(*params: str, name: str = "bags", namespace: str = "",
              output_dir: Path | None = None, remaps: tuple[str, ...] = ()) -> Recorder:
        recorder = Recorder(output_dir or tmp_path / name, tmp_path / f"{name}.log", params,
                            namespace, remaps)
        started.append(recorder)
        return recorder

    yield start
    for recorder in started:
        if recorder.proc.poll() is None:
            recorder.proc.kill()
            recorder.proc.wait(timeout=10)


def header(index: int) -> Header:
    return Header(stamp=Time(sec=1000 + index, nanosec=index * 1000), frame_id="camera")


def spin_until(node: Node, condition: Callable[[], bool], timeout: float, what: str,
               recorder: Recorder | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = recorder.output() if recorder else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log}")
        node.test_executor.spin_once(timeout_sec=0.05)


class Diagnostics:
    """Latest recorder status from /diagnostics, as a key -> value dict."""

    def __init__(self, node: Node) -> None:
        self.values: dict[str, str] = {}
        self.name = ""
        self.message = ""
        self.level = -1
        self.sub = node.create_subscription(DiagnosticArray, "/diagnostics", self._on_msg, 10)

    def _on_msg(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": recorder"):
                self.name = status.name
                self.message = status.message
                self.values = {kv.key: kv.value for kv in status.values}
                self.level = int.from_bytes(status.level, "little") if isinstance(
                    status.level, bytes) else int(status.level)

    def kept(self) -> int:
        return int(self.values.get("kept", -1))

    def publishers(self, topic: str) -> int:
        """Publishers the recorder's subscription to ``topic`` has matched (its own view)."""
        return int(self.values.get(f"publishers {topic}", 0))


def publish_frames(pub, frames: list[np.ndarray], indices: range, pause_s: float = 0.02) -> None:
    """Publish ``frames[i]`` stamped ``header(i)`` for each index, ``pause_s`` apart."""
    for i in indices:
        pub.publish(rgb8_to_msg(frames[i], header(i)))
        time.sleep(pause_s)


def wait_ready(node: Node, publishers: list, recorder: Recorder, diagnostics: Diagnostics) -> None:
    """Wait until both ends have matched: a volatile reader drops what a writer sends before the
    reader itself has matched it, even when the writer already counts the reader."""
    spin_until(node, lambda: all(p.get_subscription_count() > 0 and
                                 diagnostics.publishers(p.topic_name) > 0 for p in publishers),
               20, "the recorder and the publishers to match", recorder)


def read_rosbags(bag: Path) -> list[tuple[str, int, object]]:
    """(topic, bag timestamp, deserialized message) for every message, read with rosbags."""
    with Reader(bag) as reader:
        return [(conn.topic, t, TYPESTORE.deserialize_cdr(raw, conn.msgtype))
                for conn, t, raw in reader.messages()]


def test_sigint_closes_complete_bag_readable_by_both_readers(ros_node, frames, start_recorder):
    recorder = start_recorder("topics:=[/cam/image_raw,/cam/camera_info,/cam/image/compressed,"
                              "/odom]", *RELIABLE_ARGS)
    image_pub = ros_node.create_publisher(Image,
                                          "/cam/image_raw", QOS)
    info_pub = ros_node.create_publisher(CameraInfo, "/cam/camera_info", QOS)
    jpeg_pub = ros_node.create_publisher(CompressedImage, "/cam/image/compressed", QOS)
    odom_pub = ros_node.create_publisher(Odometry, "/odom", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [image_pub, info_pub, jpeg_pub, odom_pub], recorder, diagnostics)
    count = 8
    for i in range(count):
        image_pub.publish(rgb8_to_msg(frames[i], header(i)))
        info_pub.publish(CameraInfo(header=header(i), width=160, height=120))
        jpeg = CompressedImage(header=header(i), format="jpeg")
        jpeg.data = encode_compressed(frames[i], "jpeg")
        jpeg_pub.publish(jpeg)
        odometry = Odometry(header=header(i), child_frame_id="base_link")
        odometry.pose.pose.position.x = 0.1 * i
        odom_pub.publish(odometry)
        time.sleep(0.02)
    spin_until(ros_node, lambda: diagnostics.kept() == 4 * count, WAIT_S, "32 kept messages",
               recorder)
    assert recorder.stop(signal.SIGINT) == 0, recorder.output()

    (bag,) = recorder.bags()
    assert (bag / "metadata.yaml").is_file()
    messages = read_rosbags(bag)
    by_topic = {t: [m for topic, _, m in messages if topic == t]
                for t in ("/cam/image_raw", "/cam/camera_info", "/cam/image/compressed", "/odom")}
    assert {t: len(m) for t, m in by_topic.items()} == dict.fromkeys(by_topic, count)
    assert [m.pose.pose.position.x for m in by_topic["/odom"]] == pytest.approx(
        [0.1 * i for i in range(count)])
    for i, msg in enumerate(by_topic["/cam/image_raw"]):
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1000 + i, i * 1000)
        np.testing.assert_array_equal(decode_image_message(msg), frames[i])
    jpeg_error = np.abs(decode_image_message(by_topic["/cam/image/compressed"][3]).astype(int)
                        - frames[3]).mean()
    assert jpeg_error < 6
    bag_times = [t for _, t, _ in messages]
    assert bag_times == sorted(bag_times) and bag_times[0] > 1e18  # receive time, node clock

    with (bag / f"{bag.name}.mcap").open("rb") as stream:
        # validate_crcs: the recorder writes a CRC per chunk (rosbags alone writes none)
        reader = make_reader(stream, decoder_factories=[DecoderFactory()], validate_crcs=True)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics.message_count == 4 * count
        decoded = [(ch.topic, m) for _, ch, _, m in reader.iter_decoded_messages()]
    mcap_images = [m for topic, m in decoded if topic == "/cam/image_raw"]
    assert [m.header.stamp.sec for m in mcap_images] == [1000 + i for i in range(count)]
    np.testing.assert_array_equal(decode_image_message(mcap_images[5]), frames[5])


def test_sigkill_loses_only_the_last_flush_interval(ros_node, frames, start_recorder, tmp_path):
    recorder = start_recorder("topics:=[/kill/image_raw]", "flush_interval_s:=0.2",
                              *RELIABLE_ARGS)
    pub = ros_node.create_publisher(Image,
                                    "/kill/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    publish_frames(pub, frames, range(10))
    spin_until(ros_node, lambda: diagnostics.kept() == 10, WAIT_S, "10 kept frames", recorder)
    time.sleep(0.6)  # > flush_interval_s: everything kept so far is on disk
    assert recorder.stop(signal.SIGKILL) == -signal.SIGKILL

    (bag,) = recorder.bags()
    assert not (bag / "metadata.yaml").exists()
    with pytest.raises(Exception, match="metadata"):
        read_rosbags(bag)
    streamed = []
    with (bag / f"{bag.name}.mcap").open("rb") as stream:
        reader = NonSeekingReader(stream, decoder_factories=[DecoderFactory()])
        # Without a summary/footer the streaming reader hits the end of the file mid-stream.
        with pytest.raises(EndOfFile):
            for _, _, _, msg in reader.iter_decoded_messages(log_time_order=False):
                streamed.append(msg)
    assert [m.header.stamp.sec for m in streamed] == [1000 + i for i in range(10)]

    # The next start completes it (recover.py) before recording anything new.
    again = start_recorder("topics:=[/kill/image_raw]", *RELIABLE_ARGS, name="restart",
                           output_dir=recorder.out_dir)
    spin_until(ros_node, lambda: "recovered unfinished bag" in again.output(), 30,
               "the automatic recovery", again)
    assert again.stop() == 0
    recovered = read_rosbags(bag)
    assert [m.header.stamp.sec for _, _, m in recovered] == [1000 + i for i in range(10)]
    np.testing.assert_array_equal(decode_image_message(recovered[9][2]), frames[9])
    assert recover_bag is not None  # the same code is the `recover` command line


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs mounted for the test: a disk that really fills (mounting needs root, which
    the CI machine has)."""
    mount_point = tmp_path / "small_fs"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the disk-full test (needs root): "
                    f"{result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_disk(directory: Path) -> Path:
    """Write a file until the file system is full, as another process on the robot might."""
    filler = directory / "filler.bin"
    block = b"\0" * (256 * 1024)
    with filler.open("wb", buffering=0) as stream, contextlib.suppress(OSError):
        while True:
            stream.write(block)
    return filler


def test_disk_full_keeps_the_bag_readable_and_the_recorder_alive(ros_node, frames, start_recorder,
                                                                 small_filesystem):
    """The disk used to fill between two free-space checks: the recorder died in bags.close()
    with ENOSPC and left a bag rosbags cannot open."""
    recorder = start_recorder("topics:=[/full/image_raw]", "min_free_mb:=0.0", "quota_mb:=0.0",
                              "flush_interval_s:=0.2", *RELIABLE_ARGS,
                              output_dir=small_filesystem / "bags")
    pub = ros_node.create_publisher(Image, "/full/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    publish_frames(pub, frames, range(20))
    spin_until(ros_node, lambda: diagnostics.kept() == 20, WAIT_S, "20 kept frames", recorder)
    time.sleep(0.5)  # flushed
    filler = fill_disk(small_filesystem)
    publish_frames(pub, frames, range(20, 40))
    spin_until(ros_node, lambda: diagnostics.level == 2, WAIT_S, "ERROR on /diagnostics", recorder)
    assert "disk full" in diagnostics.values["paused_reason"]
    assert recorder.proc.poll() is None, recorder.output()

    (bag,) = recorder.bags()
    assert (bag / "metadata.yaml").is_file(), recorder.output()
    stamps = [m.header.stamp.sec for _, _, m in read_rosbags(bag)]
    assert stamps[:20] == [1000 + i for i in range(20)], stamps  # everything recorded is kept
    assert stamps == sorted(set(stamps))
    with (bag / f"{bag.name}.mcap").open("rb") as stream:
        assert sum(1 for _ in make_reader(stream, validate_crcs=True).iter_messages()) == len(stamps)

    filler.unlink()  # space is back: recording resumes into a new bag
    spin_until(ros_node, lambda: diagnostics.level == 0, WAIT_S, "recording to resume", recorder)
    for i in range(3):
        pub.publish(rgb8_to_msg(frames[i], header(100 + i)))
        time.sleep(0.05)
    spin_until(ros_node, lambda: diagnostics.kept() >= len(stamps) + 3, WAIT_S, "3 more frames",
               recorder)
    assert recorder.stop() == 0
    assert "Traceback" not in recorder.output()
    newest = recorder.bags()[-1]
    assert [m.header.stamp.sec for _, _, m in read_rosbags(newest)] == [1100, 1101, 1102]


def test_a_disk_filled_between_frames_closes_the_bag_readable_at_once(ros_node, frames,
                                                                    start_recorder,
                                                                    small_filesystem):
    """Another writer filled the disk while no frame was being written: the low-space check
    closed the bag with the close reserve still held, the close failed (ENOSPC), and the bag
    stayed unreadable until a restart, with only a WARN."""
    recorder = start_recorder("topics:=[/between/image_raw]", "min_free_mb:=2.0", "quota_mb:=0.0",
                              "flush_interval_s:=0.2", *RELIABLE_ARGS,
                              output_dir=small_filesystem / "bags")
    pub = ros_node.create_publisher(Image, "/between/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    publish_frames(pub, frames, range(6))
    spin_until(ros_node, lambda: diagnostics.kept() == 6, WAIT_S, "6 kept frames", recorder)
    filler = fill_disk(small_filesystem)
    spin_until(ros_node, lambda: diagnostics.values.get("current_bag") == "", WAIT_S,
               "the bag closed for low space", recorder)
    assert diagnostics.level in (1, 2), diagnostics.message
    (bag,) = recorder.bags()
    assert (bag / "metadata.yaml").is_file(), recorder.output()  # readable now, no restart
    assert [m.header.stamp.sec for _, _, m in read_rosbags(bag)] == list(range(1000, 1006))
    assert "cannot close" not in recorder.output(), recorder.output()
    filler.unlink()
    assert recorder.stop() == 0, recorder.output()


def test_sigterm_sqlite3_zstd_bag(ros_node, frames, start_recorder):
    recorder = start_recorder("topics:=[/sql/image_raw]", "storage:=sqlite3",
                              "compression:=zstd", *RELIABLE_ARGS)
    pub = ros_node.create_publisher(Image,
                                    "/sql/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    for i in range(5):
        pub.publish(rgb8_to_msg(frames[i], header(i)))
    spin_until(ros_node, lambda: diagnostics.kept() == 5, WAIT_S, "5 kept frames", recorder)
    assert recorder.stop(signal.SIGTERM) == 0, recorder.output()
    (bag,) = recorder.bags()
    assert (bag / f"{bag.name}.db3").is_file()
    messages = read_rosbags(bag)
    assert [m.header.stamp.sec for _, _, m in messages] == [1000 + i for i in range(5)]
    np.testing.assert_array_equal(decode_image_message(messages[4][2]), frames[4])


def test_split_by_size_and_quota_deletes_oldest(ros_node, frames, start_recorder):
    frame_bytes = 160 * 120 * 3
    # Three frames per bag; the quota holds about two finished bags plus the current one.
    recorder = start_recorder("topics:=[/quota/image_raw]",
                              f"max_bag_size_mb:={3.5 * frame_bytes / 2**20}",
                              f"quota_mb:={10.5 * frame_bytes / 2**20}", *RELIABLE_ARGS)
    pub = ros_node.create_publisher(Image,
                                    "/quota/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    publish_frames(pub, frames, range(18), pause_s=0.03)
    spin_until(ros_node, lambda: diagnostics.kept() == 18, WAIT_S, "18 kept frames", recorder)
    assert recorder.stop() == 0, recorder.output()
    bags = recorder.bags()
    assert int(diagnostics.values["bags_started"]) == 6
    assert 2 <= len(bags) <= 4 and int(diagnostics.values["bags_deleted"]) == 6 - len(bags)
    stamps = [[m.header.stamp.sec for _, _, m in read_rosbags(bag)] for bag in bags]
    assert all(len(s) == 3 for s in stamps)
    assert stamps[-1] == [1015, 1016, 1017]  # the newest survive, in order
    assert sum(s[0] for s in stamps) == sum(range(1018 - 3 * len(bags), 1018, 3))


def test_motion_gate_skips_repeated_frames(ros_node, frames, start_recorder):
    recorder = start_recorder("topics:=[/gate/image_raw]", "qos_reliability:=reliable", "max_rate_hz:=0.0",
                              "motion_threshold:=3.0")
    pub = ros_node.create_publisher(Image,
                                    "/gate/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    sequence = [0, 0, 0, 0, 30, 30, 30]  # a parked robot, then the scene changes
    for i, index in enumerate(sequence):
        pub.publish(rgb8_to_msg(frames[index], header(i)))
        time.sleep(0.02)
    spin_until(ros_node, lambda: diagnostics.values.get("skipped_motion") == "5", WAIT_S,
               "5 frames skipped by the motion gate", recorder)
    assert diagnostics.kept() == 2
    assert recorder.stop() == 0
    (bag,) = recorder.bags()
    assert [m.header.stamp.sec for _, _, m in read_rosbags(bag)] == [1000, 1004]


def call(node: Node, client, request, recorder: Recorder):
    spin_until(node, lambda: client.service_is_ready(), 20, f"service {client.srv_name}",
               recorder)
    future = client.call_async(request)
    spin_until(node, future.done, 10, f"reply of {client.srv_name}", recorder)
    return future.result()


def test_services_toggle_recording_and_split(ros_node, frames, start_recorder):
    recorder = start_recorder("topics:=[/srv/image_raw]", "start_recording:=false",
                              *RELIABLE_ARGS)
    pub = ros_node.create_publisher(Image,
                                    "/srv/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    set_recording = ros_node.create_client(SetBool, "/recorder/set_recording")
    split = ros_node.create_client(Trigger, "/recorder/split")
    wait_ready(ros_node, [pub], recorder, diagnostics)

    def publish(indices: range) -> None:
        publish_frames(pub, frames, indices)

    publish(range(3))
    spin_until(ros_node, lambda: diagnostics.values.get("skipped_paused") == "3", WAIT_S,
               "3 frames dropped while stopped", recorder)
    assert not recorder.out_dir.exists() or recorder.bags() == []
    assert call(ros_node, set_recording, SetBool.Request(data=True), recorder).success
    publish(range(3, 6))
    spin_until(ros_node, lambda: diagnostics.kept() == 3, WAIT_S, "3 kept frames", recorder)
    reply = call(ros_node, split, Trigger.Request(), recorder)
    assert reply.success and reply.message.startswith("closed ")
    publish(range(6, 8))
    spin_until(ros_node, lambda: diagnostics.kept() == 5, WAIT_S, "5 kept frames", recorder)
    reply = call(ros_node, set_recording, SetBool.Request(data=False), recorder)
    assert reply.success and "closed" in reply.message
    publish(range(8, 10))
    spin_until(ros_node, lambda: diagnostics.values.get("skipped_paused") == "5", WAIT_S,
               "2 more frames dropped", recorder)
    assert recorder.stop() == 0
    bags = recorder.bags()
    assert [[m.header.stamp.sec for _, _, m in read_rosbags(b)] for b in bags] == [
        [1003, 1004, 1005], [1006, 1007]]


def test_low_disk_space_pauses_with_diagnostics(ros_node, frames, start_recorder):
    recorder = start_recorder("topics:=[/disk/image_raw]", "min_free_mb:=900000000.0",
                              "quota_mb:=0.0", *RELIABLE_ARGS, namespace="/robot1")
    pub = ros_node.create_publisher(Image,
                                    "/disk/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    for i in range(3):
        pub.publish(rgb8_to_msg(frames[i], header(i)))
    spin_until(ros_node, lambda: diagnostics.values.get("skipped_paused") == "3", WAIT_S,
               "3 frames dropped for low disk space", recorder)
    assert diagnostics.values["paused_reason"].startswith("low disk space")
    assert diagnostics.level == 1  # WARN
    assert diagnostics.name == "/robot1/recorder: recorder"  # the node's fully qualified name
    assert recorder.stop() == 0
    assert recorder.bags() == []
    assert "recording paused, low disk space" in recorder.output()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (("storage:=zip",), "storage must be one of ['mcap', 'sqlite3'], got 'zip'"),
        (("compression:=lz4",), "compression must be one of ['none', 'zstd']"),
        (("max_rate_hz:=-1.0",), "max_rate_hz out of range"),
        (("max_rate_hz:=5",), "expecting type 'DOUBLE'"),
        (("quota_mb:=10.0", "max_bag_size_mb:=100.0"), "quota_mb (10.0) must be >="),
        (("qos_reliability:=fast",), "qos_reliability must be one of"),
        (("topics:=[/a/image_raw,/a/image_raw]",), "duplicates"),
    ],
)
def test_bad_parameters_are_rejected(params, message, start_recorder):
    recorder = start_recorder(*params)
    with contextlib.suppress(subprocess.TimeoutExpired):
        recorder.proc.wait(timeout=20)
    assert recorder.proc.returncode == 2, recorder.output()
    lines = [line for line in recorder.output().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("recorder_node: bad parameter: "), lines
    assert message in lines[0]


def test_recorder_follows_the_remapped_camera_topics(ros_node, frames, start_recorder):
    """The default topics are relative names: the launch's camera_topic remapping moves the
    recorder with perception (it used to keep recording /camera/image_raw, i.e. nothing).
    A remapped camera_info keeps its CameraInfo type whatever the new name is."""
    recorder = start_recorder(*RELIABLE_ARGS, remaps=("image:=/front/rgb",
                                                      "camera_info:=/front/calibration"))
    image_pub = ros_node.create_publisher(Image, "/front/rgb", QOS)
    info_pub = ros_node.create_publisher(CameraInfo, "/front/calibration", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [image_pub, info_pub], recorder, diagnostics)
    for i in range(4):
        image_pub.publish(rgb8_to_msg(frames[i], header(i)))
        info_pub.publish(CameraInfo(header=header(i), width=160, height=120))
        time.sleep(0.02)
    spin_until(ros_node, lambda: diagnostics.kept() == 8, WAIT_S, "8 kept messages", recorder)
    assert diagnostics.level == 0, diagnostics.values
    assert recorder.stop() == 0, recorder.output()
    (bag,) = recorder.bags()
    messages = read_rosbags(bag)
    assert {topic for topic, _, _ in messages} == {"/front/rgb", "/front/calibration"}
    assert {type(m).__name__ for topic, _, m in messages if topic == "/front/calibration"} == {
        "sensor_msgs__msg__CameraInfo"}
    assert "Failed to publish log message to rosout" not in recorder.output()


def test_a_topic_without_publisher_or_messages_is_a_warning(ros_node, start_recorder):
    """A recording that writes nothing must not report OK."""
    recorder = start_recorder("topics:=[/nobody/image_raw]", *RELIABLE_ARGS)
    diagnostics = Diagnostics(ros_node)
    spin_until(ros_node, lambda: diagnostics.level == 1, 20, "WARN on /diagnostics", recorder)
    assert "no publisher matched on /nobody/image_raw" in diagnostics.message
    assert recorder.stop() == 0


def test_a_deleted_bag_or_output_dir_starts_a_new_bag_with_a_warning(ros_node, frames,
                                                                     start_recorder):
    recorder = start_recorder("topics:=[/gone/image_raw]", "flush_interval_s:=0.2",
                              *RELIABLE_ARGS)
    pub = ros_node.create_publisher(Image, "/gone/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    publish_frames(pub, frames, range(5))
    spin_until(ros_node, lambda: diagnostics.kept() == 5, WAIT_S, "5 kept frames", recorder)
    (first,) = recorder.bags()
    shutil.rmtree(first)
    publish_frames(pub, frames, range(5, 10))
    spin_until(ros_node, lambda: diagnostics.kept() == 10, WAIT_S, "5 more kept frames", recorder)
    spin_until(ros_node, lambda: "was deleted while recording" in diagnostics.message, 10,
               "the deletion on /diagnostics", recorder)
    assert diagnostics.level == 1
    (second,) = recorder.bags()
    assert second != first

    shutil.rmtree(recorder.out_dir)  # the whole output_dir this time
    publish_frames(pub, frames, range(10, 15))
    spin_until(ros_node, lambda: diagnostics.kept() == 15, WAIT_S, "frames after the rmtree", recorder)
    assert recorder.proc.poll() is None, recorder.output()
    spin_until(ros_node, lambda: "output_dir" in diagnostics.message, 10,
               "the recreated output_dir on /diagnostics", recorder)
    assert recorder.stop() == 0, recorder.output()
    (third,) = recorder.bags()
    assert [m.header.stamp.sec for _, _, m in read_rosbags(third)] == list(range(1010, 1015))
    output = recorder.output()
    assert "Traceback" not in output and "completed at the next start" not in output, output


def test_an_unusable_output_dir_is_one_line_and_status_2(start_recorder, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    recorder = start_recorder(output_dir=blocker / "bags")
    assert recorder.proc.wait(timeout=30) == 2, recorder.output()
    lines = [line for line in recorder.output().splitlines() if line.strip()]
    assert len(lines) == 1 and "output_dir" in lines[0] and "not a writable directory" in lines[0]


ORPHAN_SCRIPT = """
import ctypes, os, signal, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans come to us
launcher = os.fork()
if launcher == 0:  # stands in for `ros2 launch`: starts the node, then is killed
    node = subprocess.Popen(sys.argv[1:], stdout=sys.stdout, stderr=subprocess.STDOUT)
    print(node.pid, flush=True)
    time.sleep(3600)
node_pid = int(sys.stdin.readline())
os.kill(launcher, signal.SIGKILL)
os.waitpid(launcher, 0)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    pid, status = os.waitpid(node_pid, os.WNOHANG)
    if pid:
        print("node exit", os.waitstatus_to_exitcode(status), flush=True)
        break
    time.sleep(0.1)
else:
    os.kill(node_pid, signal.SIGKILL)
    print("node still running", flush=True)
"""


def test_a_node_whose_launcher_is_killed_closes_its_bag_and_exits(ros_node, frames, tmp_path):
    """``ros2 launch`` killed with SIGTERM (docker stop, systemd) leaves its nodes running
    (upstream launch); they must notice, close the bag and exit 0."""
    bags = tmp_path / "bags"
    node = [sys.executable, "-m", "flowfeat_ros.recorder_node", "--ros-args",
            "-p", f"output_dir:={bags}", "-p", "topics:=[/orphan/image_raw]",
            *[arg for param in RELIABLE_ARGS for arg in ("-p", param)]]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    log = tmp_path / "orphan.log"
    with log.open("w") as log_file:
        harness = subprocess.Popen([sys.executable, "-c", ORPHAN_SCRIPT, *node], cwd=REPO,
                                   env=env, stdin=subprocess.PIPE, stdout=log_file,
                                   stderr=subprocess.STDOUT, text=True)
    pub = ros_node.create_publisher(Image, "/orphan/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    spin_until(ros_node, lambda: diagnostics.publishers("/orphan/image_raw") > 0
               and pub.get_subscription_count() > 0, 30, "the recorder to match")
    publish_frames(pub, frames, range(6))
    spin_until(ros_node, lambda: diagnostics.kept() == 6, WAIT_S, "6 kept frames")
    node_pid = log.read_text().split()[0]
    harness.communicate(f"{node_pid}\n", timeout=40)
    output = log.read_text()
    assert "node exit 0" in output, output
    assert "is gone; stopping" in output
    (bag,) = sorted(p for p in bags.iterdir() if p.is_dir())
    assert [m.header.stamp.sec for _, _, m in read_rosbags(bag)] == list(range(1000, 1006))


def test_an_output_dir_that_cannot_be_recreated_pauses_with_error_until_it_can(ros_node, frames,
                                                                               start_recorder):
    """output_dir deleted and a file put in its place: recreating it fails inside the message
    callback, which must pause recording with ERROR, not end the node."""
    recorder = start_recorder("topics:=[/blocked/image_raw]", "flush_interval_s:=0.2",
                              *RELIABLE_ARGS)
    pub = ros_node.create_publisher(Image, "/blocked/image_raw", QOS)
    diagnostics = Diagnostics(ros_node)
    wait_ready(ros_node, [pub], recorder, diagnostics)
    publish_frames(pub, frames, range(3))
    spin_until(ros_node, lambda: diagnostics.kept() == 3, WAIT_S, "3 kept frames", recorder)
    shutil.rmtree(recorder.out_dir)
    recorder.out_dir.write_text("a file where the bags went")
    publish_frames(pub, frames, range(3, 6))
    spin_until(ros_node, lambda: diagnostics.level == 2, WAIT_S, "ERROR on /diagnostics", recorder)
    assert "output_dir unusable" in diagnostics.message
    assert recorder.proc.poll() is None, recorder.output()
    recorder.out_dir.unlink()  # the way is clear again: recording resumes by itself
    spin_until(ros_node, lambda: diagnostics.level != 2, WAIT_S, "recording to resume", recorder)
    publish_frames(pub, frames, range(6, 9))
    spin_until(ros_node, lambda: diagnostics.kept() >= 6, WAIT_S, "frames after the resume", recorder)
    assert recorder.stop() == 0, recorder.output()
    assert "Traceback" not in recorder.output()
