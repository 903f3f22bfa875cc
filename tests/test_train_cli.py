"""flowfeat_core.train as users run it: bad input, resume, Ctrl-C, torchrun with two CPU processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from bag_writing import read_video_frames, write_image_bag
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from flowfeat_core.cli.train import main as train_main
from flowfeat_core.hub.checkpoint import load_checkpoint, read_checkpoint_metadata
from flowfeat_core.training.state import load_training_state

pytestmark = pytest.mark.slow  # minutes of training or exporting on the 2-core machine

TINY = ["--batch-size", "2", "--input-size", "64", "--max-side", "96", "--workers", "0", "--log-every", "1"]


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_bags")
    return write_image_bag(root / "vtest", read_video_frames("vtest.avi", 12, 96), storage="sqlite3")


def run_train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowfeat_core.train", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def empty_folder(root: Path) -> list[str]:
    root.mkdir()
    return ["--bags", str(root)]


def corrupt_mcap(root: Path) -> list[str]:
    root.mkdir()
    (root / "x.mcap").write_bytes(b"\x89MCAP0\r\nbroken")
    return ["--bags", str(root / "x.mcap")]


def missing_video(root: Path) -> list[str]:
    return ["--videos", str(root / "missing.avi")]


@pytest.mark.parametrize(
    ("make_input", "message"),
    [(empty_folder, "empty directory"), (corrupt_mcap, "corrupt"), (missing_video, "missing.avi")],
)
def test_bad_data_gives_one_error_line(tmp_path: Path, make_input, message: str) -> None:
    out = tmp_path / "run"
    result = run_train(*make_input(tmp_path / "data"), "--out", str(out), *TINY)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0].lower(), result.stderr
    assert not (out / "flowfeat.safetensors").exists()


def test_bag_without_image_topic_and_unknown_init(small_bag: Path, tmp_path: Path) -> None:
    result = run_train(
        "--bags", str(small_bag), "--topic", "/lidar/points", "--out", str(tmp_path / "a"), *TINY
    )
    assert result.returncode == 1 and "/lidar/points" in result.stderr
    result = run_train(
        "--bags",
        str(small_bag),
        "--init",
        str(tmp_path / "nope.safetensors"),
        "--out",
        str(tmp_path / "b"),
        *TINY,
    )
    assert result.returncode == 1 and "checkpoint not found" in result.stderr
    result = run_train("--bags", str(small_bag), "--steps", "0")
    assert result.returncode == 2 and "--steps must be >= 1" in result.stderr


def test_keep_directions_reach_the_training_loss(small_bag: Path, tmp_path: Path) -> None:
    """The first step (same seed, batch and fresh decoder) scores the encoder-keeping term by
    principal direction (the default, 32) differently from by variance (0): the option reaches
    the loss the trainer optimises, not only the provenance."""
    keep = {}
    for directions in ("0", "32"):
        out = tmp_path / directions
        assert train_main(["--bags", str(small_bag), "--steps", "1", "--keep-directions", directions,
                           "--out", str(out), *TINY]) == 0
        events = EventAccumulator(str(out / "tensorboard"))
        events.Reload()
        keep[directions] = events.Scalars("loss/keep")[0].value
    assert all(0 < value <= 1 for value in keep.values()), keep
    assert abs(keep["0"] - keep["32"]) > 0.01, keep


def test_resume_continues_from_saved_state(small_bag: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_train("--bags", str(small_bag), "--steps", "2", "--out", str(out), "--real-check-every", "2",
                      *TINY)
    assert first.returncode == 0, first.stderr
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    real = {tag for tag in events.Tags()["scalars"] if tag.startswith("real/")}
    assert real == {"real/depth_r2", "real/propagation_gap2", "real/propagation_gap8", "real/stability"}
    assert [event.step for event in events.Scalars("real/depth_r2")] == [2]
    state = load_training_state(out / "state.safetensors")
    assert state.step == 2 and state.optimizer["state"]
    second = run_train("--bags", str(small_bag), "--steps", "4", "--resume", "--out", str(out), *TINY)
    assert second.returncode == 0, second.stderr
    assert "4 steps" in second.stdout
    _, provenance = read_checkpoint_metadata(out / "flowfeat.safetensors")
    assert provenance["steps"] == 4 and provenance["teacher_flow"] == "dis"
    assert provenance["wall_seconds"] > state.train_seconds > 0, "wall time adds up over resumes"
    assert provenance["machine"]["cpu_count"] >= 1 and provenance["machine"]["torch"] == torch.__version__
    config = provenance["train_config"]
    recipe = (config["rank_weight"], config["keep_weight"], config["keep_directions"])
    assert recipe == (0.0, 1.0, 32), "the default recipe"
    model = load_checkpoint(out / "flowfeat.safetensors")
    assert not torch.equal(model.decoder.norm.norm.weight, state.decoder["norm.norm.weight"])
    third = run_train("--bags", str(small_bag), "--steps", "4", "--resume", "--out", str(out), *TINY)
    assert third.returncode == 0, third.stderr
    assert "nothing to do: the resumed state is at step 4 and --steps is 4" in third.stdout
    assert "nan" not in third.stdout


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_twice_saves_a_loadable_checkpoint(small_bag: Path, tmp_path: Path, stop_signal) -> None:
    """SIGINT or SIGTERM after real steps (read from the progress bar, not guessed by a sleep),
    then the same signal again while saving: both files are written, no traceback. SIGTERM used
    to save nothing."""
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "flowfeat_core.train", "--bags", str(small_bag), "--steps", "100000",
         "--out", str(out), *TINY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.extend(iter(
        lambda: os.read(process.stderr.fileno(), 4096), b"")), daemon=True)
    reader.start()

    def steps_done() -> int:
        counts = re.findall(rb"(\d+)/100000", b"".join(stderr_chunks))
        return int(counts[-1]) if counts else 0

    try:
        deadline = time.monotonic() + 240
        while steps_done() < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert steps_done() >= 2, b"".join(stderr_chunks).decode(errors="replace")[-2000:]
        process.send_signal(stop_signal)
        time.sleep(0.05)
        process.send_signal(stop_signal)
        stdout = process.stdout.read().decode()
        process.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        process.kill()
    stderr = b"".join(stderr_chunks).decode(errors="replace")
    assert process.returncode == 130, stderr
    assert "interrupted" in stdout and "Traceback" not in stderr
    assert load_training_state(out / "state.safetensors").step >= 2
    load_checkpoint(out / "flowfeat.safetensors")


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_torchrun_two_cpu_processes(small_bag: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(free_port()), "-m", "flowfeat_core.train", "--bags", str(small_bag),
         "--steps", "2", "--out", str(out), "--device", "cpu", *TINY],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    _, provenance = read_checkpoint_metadata(out / "flowfeat.safetensors")
    assert provenance["world_size"] == 2 and provenance["steps"] == 2
