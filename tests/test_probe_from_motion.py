"""``flowfeat_probe depth --from-motion`` on real rosbag2 bags of procedural moving-camera
sequences: labels from the recording's own motion, metric with odometry and relative without;
exact depth in the bags only scores the held-out bag; a static camera, reversed odometry and a
missing camera_info each end with one clear line and no probe file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from flowfeat_core.cli.probe import main
from flowfeat_core.probes.io import load_probe
from flowfeat_core.synthetic.benchmark import generate_sequence
from flowfeat_core.synthetic.scene import CameraPath
from flowfeat_core.synthetic.writers import BagTopics, write_sequence_bag

SIZE = {"height": 96, "width": 128, "frames": 10, "max_objects": 2}
FAST = ["--model", "embedded-untrained", "--steps", "60", "--every", "3", "--max-side", "128"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("motion_bags")
    written: dict[str, list[Path]] = {"odometry": [], "none": []}
    for index in range(3):
        sequence = generate_sequence(0, index, "train", **SIZE)
        for poses in written:
            written[poses].append(write_sequence_bag(sequence, root / poses / sequence.name,
                                                     poses=poses))
    return written


def run(argv: list[str], capsys) -> tuple[int, dict | str]:
    code = main(["depth", "--from-motion", *argv, *FAST])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else captured.err


def test_odometry_gives_a_metric_probe_scored_on_the_held_out_bags_depth(bags, tmp_path,
                                                                          capsys) -> None:
    out = tmp_path / "metric.safetensors"
    code, metrics = run(["--bags", *map(str, bags["odometry"][:2]), "--val-bags",
                         str(bags["odometry"][2]), "--depth-topic", BagTopics().depth,
                         "--out", str(out)], capsys)
    assert code == 0, metrics
    assert metrics["labels"] == "motion (metric)"
    assert metrics["train_labels"]["frames"] >= 6 and metrics["validation_images"] >= 3
    assert metrics["train_labels"]["median_coverage"] > 0.3
    assert metrics["recordings"] == "2 recordings, 20 frames; poses from odometry /odom (2)"
    assert metrics["validation_labels_vs_depth_topic"]["abs_rel"] < 0.2  # metric, unscaled
    exact = metrics["validation_depth_topic"]
    assert 0 < exact["abs_rel"] < 1.0 and "validation_depth_topic_median_scaled" in metrics
    probe = load_probe(out)
    assert probe.metric and probe.metrics["labels"] == "motion (metric)"


def test_without_odometry_the_probe_is_relative(bags, tmp_path, capsys) -> None:
    code, metrics = run(["--bags", *map(str, bags["none"]), "--out",
                         str(tmp_path / "relative.safetensors")], capsys)
    assert code == 0, metrics
    assert metrics["labels"] == "motion (relative)" and metrics["validation_images"] >= 1
    assert not load_probe(tmp_path / "relative.safetensors").metric


def test_bad_recordings_get_one_line_and_train_nothing(bags, tmp_path, capsys) -> None:
    sequence = generate_sequence(0, 0, "train", **SIZE)
    static = replace(sequence, frames=[sequence.frames[0]] * len(sequence.frames))
    camera = sequence.camera
    reversed_odometry = replace(sequence, camera=CameraPath(camera.intrinsics,
                                                            camera.rotations[::-1],
                                                            camera.centres[::-1]))
    cases = {
        "static camera gives no parallax": write_sequence_bag(static, tmp_path / "static"),
        "odometry does not match the frames": write_sequence_bag(
            reversed_odometry, tmp_path / "reversed", poses="odometry"),
        "intrinsics cannot be known": write_sequence_bag(
            sequence, tmp_path / "no_info", topics=BagTopics(camera_info="")),
    }
    for problem, bag in cases.items():
        out = tmp_path / f"{bag.name}.safetensors"
        argv = ["--bags", str(bag), "--val-bags", str(bags["none"][0]), "--out", str(out)]
        code, error = run(argv, capsys)
        assert code == 1 and problem in error, error
        assert error.count("\n") == 1 and not out.exists()


def test_the_exact_depth_probe_holds_out_the_same_bags_for_comparison(bags, tmp_path,
                                                                      capsys) -> None:
    topics = ["--image-topic", BagTopics().image, "--depth-topic", BagTopics().depth]
    odometry = list(map(str, bags["odometry"]))
    code = main(["depth", "--bags", *odometry[:2], "--val-bags", odometry[2], *topics,
                 "--out", str(tmp_path / "exact.safetensors"), *FAST])
    metrics = json.loads(capsys.readouterr().out)
    assert code == 0 and metrics["train_images"] == len(range(0, 20, 3))  # --every 3 of 2 x 10
    assert metrics["validation_images"] == 10  # every held-out frame
    assert "validation_median_scaled" in metrics  # a metric probe is scored both ways
    assert main(["depth", "--bags", odometry[2], "--val-bags", odometry[2], *topics,
                 "--out", str(tmp_path / "none.safetensors"), *FAST]) == 1
    assert "nothing is left to train on" in capsys.readouterr().err
