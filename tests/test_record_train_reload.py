"""End to end on the robot loop: record camera frames with the recorder node, train on those bags
starting from the deployed checkpoint, overwrite the deployed file and hot-reload the running
perception node. Every component is real and in its own process: recorder, trainer, perception
node; this process publishes real vtest.avi frames and receives the node's real outputs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from test_perception_node import expected_features
from test_perception_support import (
    REPO,
    Camera,
    Outputs,
    PerceptionProcess,
    base_params,
    make_checkpoint,
    peer,
    read_frames,
    spin_for,
    spin_until,
)
from test_recorder import RELIABLE_ARGS, Recorder
from test_recorder import Diagnostics as RecorderDiagnostics

from flowfeat_ros.image_conversion import image_msg_to_array

pytestmark = pytest.mark.ros
__all__ = ["peer"]  # fixture used by this module

NAMESPACE = "/loop"
NODE = f"{NAMESPACE}/perception"
RECORDED_TOPIC = "/robot_cam"
RECORDED_FRAMES = 30
FEATURES = "flowfeat/features"
TRAIN_TIMEOUT_S = 300
MATCH_ATOL = 2e-3  # node output vs the same checkpoint run in this process
CLEAR_CHANGE = 0.05  # far above MATCH_ATOL: the trained model is told apart from the deployed one


def train_command(bags: Path, init: Path, out: Path) -> list[str]:
    """The documented training CLI, shrunk to two tiny steps."""
    return [sys.executable, "-m", "flowfeat_core.train", "--bags", str(bags), "--init", str(init),
            "--steps", "2", "--batch-size", "2", "--input-size", "64", "--max-side", "96",
            "--workers", "0", "--out", str(out)]


def replace_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` beside ``target`` and rename it over ``target`` (readers never see half)."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def features_for(peer, camera: Camera, outputs: Outputs, rgb: np.ndarray, frame_id: str,
                 node: PerceptionProcess) -> tuple[Header, object]:
    """Send one frame and return its header and the features message published for it."""
    before = outputs.count(FEATURES)
    header = camera.send(rgb, frame_id=frame_id)
    spin_until(peer, lambda: outputs.count(FEATURES) > before, 60, "features for a frame", node)
    return header, outputs.messages[FEATURES][-1]


def record(peer, camera: Camera, frames: list[np.ndarray], recorder: Recorder) -> None:
    """Publish ``frames`` to the recorder and wait until it has kept every one of them."""
    diagnostics = RecorderDiagnostics(peer)
    spin_until(peer, lambda: camera.image.get_subscription_count() > 0
               and diagnostics.publishers(camera.image.topic_name) > 0, 60,
               "the recorder and the camera to match", recorder)
    for rgb in frames:
        camera.send(rgb, info=False)
        spin_for(peer, 0.05)
    spin_until(peer, lambda: diagnostics.kept() == len(frames), 30,
               f"{len(frames)} kept frames", recorder)


def stop_all(processes: list[subprocess.Popen]) -> None:
    """Kill whatever is still running (the test stops its processes itself when it passes)."""
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)


def test_record_train_and_reload_changes_the_running_nodes_features(peer, tmp_path):
    frames = read_frames(2 * RECORDED_FRAMES)[::2]  # every other frame: clear motion
    probe_frame = frames[7]
    deployed = make_checkpoint(tmp_path / "deployed.safetensors")
    started: list[subprocess.Popen] = []
    try:
        # The node loads its model while the recorder records.
        node = PerceptionProcess(tmp_path / "perception.log", base_params(deployed), NAMESPACE)
        started.append(node.proc)
        recorder = Recorder(tmp_path / "bags", tmp_path / "recorder.log",
                            (f"topics:=[{RECORDED_TOPIC}/image]", *RELIABLE_ARGS))
        started.append(recorder.proc)
        record(peer, Camera(peer, RECORDED_TOPIC), frames, recorder)
        assert recorder.stop(signal.SIGINT) == 0, recorder.output()
        (bag,) = recorder.bags()
        assert (bag / "metadata.yaml").is_file()

        # Training runs while the deployed model serves its first outputs.
        train_log = tmp_path / "train.log"
        with train_log.open("w") as log_file:
            trainer = subprocess.Popen(
                train_command(recorder.out_dir, deployed, tmp_path / "run"), cwd=REPO,
                env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=log_file,
                stderr=subprocess.STDOUT)
        started.append(trainer)
        camera = Camera(peer, NAMESPACE)
        outputs = Outputs(peer, NAMESPACE, (FEATURES,))
        spin_until(peer, lambda: outputs.connected() and camera.image.get_subscription_count() > 0,
                   90, "the perception node's topics", node)
        _, first = features_for(peer, camera, outputs, probe_frame, "before", node)
        _, repeat = features_for(peer, camera, outputs, probe_frame, "before", node)
        old_features = image_msg_to_array(first)
        np.testing.assert_array_equal(image_msg_to_array(repeat), old_features)
        np.testing.assert_allclose(old_features, expected_features(deployed, probe_frame),
                                   atol=MATCH_ATOL)

        assert trainer.wait(timeout=TRAIN_TIMEOUT_S) == 0, train_log.read_text()
        trained = tmp_path / "run" / "flowfeat.safetensors"
        assert trained.is_file(), train_log.read_text()

        trained_features = expected_features(trained, probe_frame)
        assert np.abs(trained_features - old_features).max() > CLEAR_CHANGE

        replace_atomically(trained, deployed)
        client = peer.create_client(Trigger, f"{NODE}/reload")
        spin_until(peer, client.service_is_ready, 30, "the reload service", node)
        future = client.call_async(Trigger.Request())
        spin_until(peer, future.done, 90, "the reload reply", node)
        assert future.result().success, future.result().message
        assert "reloaded" in future.result().message

        for frame_id in ("after", "after_again"):
            header, message = features_for(peer, camera, outputs, probe_frame, frame_id, node)
            assert (message.header.stamp, message.header.frame_id) == (header.stamp, frame_id)
            assert (message.encoding, message.width, message.height) == ("32FC128", 160, 120)
            np.testing.assert_allclose(image_msg_to_array(message), trained_features,
                                       atol=MATCH_ATOL)
        assert node.alive(), node.output()  # the same process served before and after
        assert node.stop() == 0, node.output()
    finally:
        stop_all(started)
