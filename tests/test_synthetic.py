"""Procedural benchmark: exact flow, determinism, bag and folder output, teacher-flow scoring."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from flowfeat_core.cli.synthetic import main as synthetic_main
from flowfeat_core.data.bag_reader import image_topic_counts, iter_image_messages
from flowfeat_core.data.image_codec import decode_image_message
from flowfeat_core.probes.labeled_data import decode_depth_message, decode_label_message
from flowfeat_core.synthetic.benchmark import generate_sequence
from flowfeat_core.synthetic.flow_scores import endpoint_error, score_teacher
from flowfeat_core.synthetic.textures import CLASS_NAMES
from flowfeat_core.synthetic.writers import (
    IMAGE_TOPICS,
    BagTopics,
    write_sequence_bag,
    write_sequence_folder,
)
from flowfeat_core.training.teacher_flow import make_teacher_flow


@pytest.fixture(scope="module")
def sequence():
    return generate_sequence(seed=3, frames=4, height=96, width=128)


def _warp_back(frame_next: np.ndarray, flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(frame_next, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)


def test_rendered_flow_warps_next_frame_onto_current(sequence):
    for current, following in zip(sequence.frames[:-1], sequence.frames[1:], strict=True):
        valid = current.flow_valid
        assert valid.mean() > 0.8
        warped = _warp_back(following.rgb, current.flow).astype(np.float32)
        error = np.abs(warped - current.rgb)[valid].mean()
        unwarped_error = np.abs(following.rgb.astype(np.float32) - current.rgb)[valid].mean()
        assert np.abs(current.flow[valid]).max() > 0.5  # the camera really moves
        assert error < 4.0, error  # bilinear resampling twice is the only difference
        assert error < 0.5 * unwarped_error


def test_labels_and_depth_are_consistent(sequence):
    frame = sequence.frames[0]
    assert frame.rgb.shape == (96, 128, 3) and frame.rgb.dtype == np.uint8
    assert (frame.depth > 0).all() and frame.depth.max() < 20
    assert set(np.unique(frame.classes)) <= set(range(len(CLASS_NAMES)))
    objects = frame.instances > 0
    assert objects.any()
    assert (frame.classes[objects] >= 2).all() and (frame.classes[~objects] < 2).all()
    # objects stand in front of the wall: nearer than the farthest wall pixel
    assert frame.depth[objects].max() < frame.depth[frame.classes == 0].max()


def test_same_seed_same_pixels_other_seed_differs(sequence):
    again = generate_sequence(seed=3, frames=4, height=96, width=128)
    other = generate_sequence(seed=4, frames=4, height=96, width=128)
    for first, second in zip(sequence.frames, again.frames, strict=True):
        for field in ("rgb", "depth", "classes", "instances", "flow", "flow_valid"):
            assert np.array_equal(getattr(first, field), getattr(second, field))
    assert not np.array_equal(sequence.frames[0].rgb, other.frames[0].rgb)
    test_split = generate_sequence(seed=3, split="test", frames=4, height=96, width=128)
    assert not np.array_equal(sequence.frames[0].rgb, test_split.frames[0].rgb)


def test_bag_holds_rep118_depth_and_labels(sequence, tmp_path):
    bag = write_sequence_bag(sequence, tmp_path / "bag", depth_delay_ns=3_000_000)
    topics = BagTopics()
    assert image_topic_counts(bag) == {getattr(topics, name): 4 for name in IMAGE_TOPICS}
    depths = [decode_depth_message(msg) for _, msg in iter_image_messages(bag, topics.depth)]
    labels = [decode_label_message(msg) for _, msg in iter_image_messages(bag, topics.labels)]
    images = [decode_image_message(msg) for _, msg in iter_image_messages(bag, topics.image)]
    for frame, depth, label, rgb in zip(sequence.frames, depths, labels, images, strict=True):
        assert np.array_equal(depth, frame.depth)
        assert np.array_equal(label, frame.classes)
        assert np.array_equal(rgb, frame.rgb)


def test_folder_holds_png_millimetres_labels_and_flow(sequence, tmp_path):
    folder = write_sequence_folder(sequence, tmp_path / "seq")
    depth_mm = cv2.imread(str(folder / "depth" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert depth_mm.dtype == np.uint16
    assert np.abs(depth_mm / 1000.0 - sequence.frames[1].depth).max() <= 0.0005 + 1e-6
    labels = cv2.imread(str(folder / "labels" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(labels, sequence.frames[1].classes)
    assert np.array_equal(np.load(folder / "flow" / "000001.npy"), sequence.frames[1].flow)
    assert json.loads((folder / "meta.json").read_text())["class_names"] == list(CLASS_NAMES)


def test_teacher_scoring_ranks_dis_far_below_zero_flow(sequence):
    scores = score_teacher(make_teacher_flow("dis"), [sequence])
    assert scores["epe"] < 0.5 * scores["zero_flow_epe"]
    flow = sequence.frames[0].flow
    assert endpoint_error(flow, flow, sequence.frames[0].flow_valid) == 0.0


def test_cli_writes_bags_and_folders(tmp_path, capsys):
    assert (
        synthetic_main(
            ["--out", str(tmp_path), "--sequences", "1", "--frames", "2", "--height", "64", "--width", "80"]
        )
        == 0
    )
    assert (tmp_path / "bags" / "train_0_000" / "metadata.yaml").is_file()
    assert (tmp_path / "folders" / "train_0_000" / "images" / "000001.png").is_file()
    assert (
        synthetic_main(
            [
                "--out",
                str(tmp_path),
                "--sequences",
                "1",
                "--frames",
                "2",
                "--height",
                "64",
                "--width",
                "80",
                "--format",
                "bag",
            ]
        )
        == 1
    )
    assert "already exists" in capsys.readouterr().err
