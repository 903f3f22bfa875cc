"""Ctrl-C as a terminal delivers it: SIGINT to a whole process group of real node processes, and
a second SIGINT right after (``ros2 launch`` forwards one more). Every node must exit with status
0 and no traceback, and the recorder's bag must open in rosbags and in the mcap reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader
from test_perception_support import CONFIG, REPO, VIDEO, make_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TRACEBACK_MARKERS = ("Traceback", "KeyboardInterrupt", "Exception ignored", "RCLError")


class ProcessGroup:
    """Node processes sharing one new process group, each logging to its own file."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, label: str, module: str, *ros_args: str) -> None:
        args = [sys.executable, "-m", module, "--ros-args", *ros_args]
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        leader = next(iter(self.procs.values())).pid if self.procs else 0  # 0: a new group
        with (self.log_dir / f"{label}.log").open("w") as log:
            self.procs[label] = subprocess.Popen(args, cwd=REPO, env=env, stdout=log,
                                                 stderr=subprocess.STDOUT,
                                                 process_group=leader)

    def output(self, label: str) -> str:
        return (self.log_dir / f"{label}.log").read_text()

    def interrupt_twice(self, gap_s: float) -> None:
        """Two SIGINTs to the whole group, ``gap_s`` apart (terminal Ctrl-C + launch's)."""
        group = os.getpgid(next(iter(self.procs.values())).pid)
        os.killpg(group, signal.SIGINT)
        time.sleep(gap_s)
        os.killpg(group, signal.SIGINT)

    def wait_all(self, timeout_s: float = 30.0) -> dict[str, int]:
        codes = {}
        for label, proc in self.procs.items():
            try:
                codes[label] = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[label] = proc.wait()
        return codes

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def group(tmp_path):
    processes = ProcessGroup(tmp_path)
    yield processes
    processes.kill_all()


def assert_clean_exit(group: ProcessGroup, codes: dict[str, int]) -> None:
    for label, code in codes.items():
        output = group.output(label)
        assert code == 0, f"{label} exited with {code}:\n{output}"
        found = [marker for marker in TRACEBACK_MARKERS if marker in output]
        assert not found, f"{label} printed {found}:\n{output}"


def wait_for_line(group: ProcessGroup, label: str, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in group.output(label):
        assert group.procs[label].poll() is None, group.output(label)
        assert time.monotonic() < deadline, f"no {text!r} from {label}:\n{group.output(label)}"
        time.sleep(0.05)


@pytest.mark.parametrize("delay_s", [0.3, 1.5])
def test_ctrl_c_during_start_up_stops_quietly(group, delay_s):
    """Importing torch and loading the model take seconds: a Ctrl-C then must not raise."""
    group.start("perception", "flowfeat_ros.perception_node", "--params-file", str(CONFIG))
    time.sleep(delay_s)
    group.interrupt_twice(0.02)
    assert_clean_exit(group, group.wait_all())


@pytest.mark.parametrize("gap_s", [0.02, 0.3])
def test_ctrl_c_twice_stops_every_node_cleanly_and_keeps_the_bag(group, tmp_path, gap_s):
    bags = tmp_path / "bags"
    checkpoint = make_checkpoint(tmp_path / "model.safetensors")
    group.start("camera", "flowfeat_ros.video_publisher", "-p", f"source:={VIDEO}",
                "-p", "loop:=true", "-p", "width:=160", "-p", "rate:=15.0")
    group.start("recorder", "flowfeat_ros.recorder_node", "-p", f"output_dir:={bags}",
                "-p", "max_rate_hz:=0.0", "-p", "motion_threshold:=0.0",
                "-p", "flush_interval_s:=0.2", "-r", "image:=/camera/image_raw",
                "-r", "camera_info:=/camera/camera_info")
    group.start("perception", "flowfeat_ros.perception_node", "--params-file", str(CONFIG),
                "-p", f"checkpoint:={checkpoint}", "-r", "image:=/camera/image_raw",
                "-r", "camera_info:=/camera/camera_info")
    wait_for_line(group, "perception", "running", 60)
    time.sleep(1.5)  # recording and inference under way
    group.interrupt_twice(gap_s)
    assert_clean_exit(group, group.wait_all())

    (bag,) = sorted(p for p in bags.iterdir() if p.is_dir())
    assert (bag / "metadata.yaml").is_file(), group.output("recorder")
    with Reader(bag) as reader:
        recorded = sum(1 for _ in reader.messages())
    assert recorded > 0
    (mcap_file,) = bag.glob("*.mcap")
    with mcap_file.open("rb") as stream:
        assert sum(1 for _ in make_reader(stream).iter_messages()) == recorded
