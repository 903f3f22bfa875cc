"""Probes on real (frozen, ImageNet-pretrained encoder) features of procedural sequences."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from flowfeat_core.cli.probe import main as probe_main
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.probes.io import ProbeError, load_probe, save_probe
from flowfeat_core.probes.metrics import SegmentationMetrics
from flowfeat_core.probes.training import FitConfig, features_of
from flowfeat_core.probes.workflow import (
    UNTRAINED_EMBEDDED,
    make_spec,
    resolve_model,
    score_on_pairs,
    train_on_pairs,
)
from flowfeat_core.synthetic.benchmark import generate_split
from flowfeat_core.synthetic.textures import CLASS_COLORS, CLASS_NAMES
from flowfeat_core.synthetic.writers import BagTopics, write_sequence_bag, write_sequence_folder

SIZE = {"height": 96, "width": 128, "frames": 4}


@pytest.fixture(scope="module")
def predictor():
    model, _ = resolve_model(UNTRAINED_EMBEDDED)
    return Predictor(model, device="cpu", input_hw=(SIZE["height"], SIZE["width"]))


@pytest.fixture(scope="module")
def data():
    train = generate_split(1, "train", 4, **SIZE)
    test = generate_split(1, "test", 2, **SIZE)
    return train, test


def _pairs(sequences, field):
    return [(frame.rgb, getattr(frame, field)) for sequence in sequences for frame in sequence.frames]


def _train(predictor, sequences, task, head="linear", choice="flowfeat+encoder", metric=True):
    spec_for = partial(
        make_spec, task, head, "flowfeat+encoder", class_names=CLASS_NAMES, class_colors=CLASS_COLORS
    )
    target = "depth" if task == "depth" else "classes"
    return train_on_pairs(predictor, _pairs(sequences, target), spec_for, 512, FitConfig(steps=150))


def test_segmentation_probe_beats_majority_class(predictor, data):
    train, test = data
    probe = _train(predictor, train, "segmentation")
    scores = score_on_pairs(probe, predictor, _pairs(test, "classes"))
    classes = np.concatenate([f.classes.ravel() for s in train for f in s.frames])
    majority = SegmentationMetrics(len(CLASS_NAMES))
    for _, labels in _pairs(test, "classes"):
        majority.add(np.full_like(labels, np.bincount(classes).argmax()), labels)
    assert scores["miou"] > majority.result()["miou"] + 0.1, (scores, majority.result())
    assert 0.0 < scores["boundary_f"] <= 1.0


def test_checkpoint_round_trip_is_exact(predictor, data, tmp_path):
    probe = _train(predictor, data[0][:1], "segmentation", head="mlp")
    probe.model_info, probe.metrics = {"source": UNTRAINED_EMBEDDED}, {"miou": 0.5}
    loaded = load_probe(save_probe(tmp_path / "probe.safetensors", probe))
    assert loaded.task == "segmentation" and loaded.metric
    assert loaded.class_names == list(CLASS_NAMES) and loaded.class_colors == list(CLASS_COLORS)
    assert loaded.model_info == probe.model_info and loaded.metrics == probe.metrics
    dense, encoder = features_of(predictor, data[1][0].frames[0].rgb)
    with torch.inference_mode():
        assert torch.equal(loaded(dense, encoder), probe(dense, encoder))
    assert loaded(dense, encoder).shape == (1, len(CLASS_NAMES), SIZE["height"], SIZE["width"])


def test_unknown_or_foreign_probe_files_are_refused(tmp_path):
    with pytest.raises(ProbeError, match="not found"):
        load_probe(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ProbeError, match="not a readable safetensors"):
        load_probe(tmp_path / "junk.safetensors")
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ProbeError, match="not a flowfeat probe"):
        load_probe(tmp_path / "other.safetensors")


@pytest.mark.parametrize("head", [[], ["--context"], ["--head", "conv"]])
def test_depth_cli_trains_from_bags(data, tmp_path, capsys, head):
    bag = write_sequence_bag(data[0][0], tmp_path / "bag", depth_delay_ns=5_000_000)
    topics = BagTopics()
    out = tmp_path / "depth.safetensors"
    args = [
        "depth",
        "--bags",
        str(bag),
        "--image-topic",
        topics.image,
        "--depth-topic",
        topics.depth,
        "--model",
        UNTRAINED_EMBEDDED,
        "--out",
        str(out),
        "--steps",
        "20",
        "--device",
        "cpu",
        "--input-short-side",
        "96",
        *head,
    ]
    assert probe_main(args) == 0, capsys.readouterr().err
    probe = load_probe(out)
    assert probe.task == "depth" and probe.metric
    expected_head = head[-1] if "--head" in head else "linear"
    assert (probe.spec.context, probe.spec.head) == ("--context" in head, expected_head)
    assert set(probe.metrics["validation"]) == {"abs_rel", "rmse", "delta1"}
    assert probe.model_info["source"] == UNTRAINED_EMBEDDED
    # a depth stamp 30 ms from every colour image is not paired with the default 20 ms tolerance
    late = write_sequence_bag(data[0][0], tmp_path / "late", depth_delay_ns=30_000_000)
    assert probe_main([*args[:2], str(late), *args[3:]]) == 1
    assert "no /camera/color/image_raw image within 20 ms" in capsys.readouterr().err
    assert probe_main([*args[:6], "/camera/nonexistent", *args[7:]]) == 1
    assert "has no image topic /camera/nonexistent" in capsys.readouterr().err


def test_segmentation_cli_from_folders_and_bad_sizes(data, tmp_path, capsys):
    folder = write_sequence_folder(data[0][0], tmp_path / "seq")
    out = tmp_path / "seg.safetensors"
    args = [
        "segmentation",
        "--images",
        str(folder / "images"),
        "--labels",
        str(folder / "labels"),
        "--class-names",
        ",".join(CLASS_NAMES),
        "--model",
        UNTRAINED_EMBEDDED,
        "--out",
        str(out),
        "--steps",
        "20",
        "--device",
        "cpu",
        "--input-short-side",
        "96",
        "--head",
        "mlp",
    ]
    assert probe_main(args) == 0, capsys.readouterr().err
    assert load_probe(out).class_names == list(CLASS_NAMES)
    assert probe_main([*args[:6], "wall,floor", *args[7:]]) == 1
    assert "only 2 class names" in capsys.readouterr().err
    small = cv2.imread(str(folder / "labels" / "000002.png"), cv2.IMREAD_UNCHANGED)[:50, :60]
    cv2.imwrite(str(folder / "labels" / "000002.png"), small)
    assert probe_main(args) == 1
    assert "target is 60x50 but the image is 128x96" in capsys.readouterr().err


def test_segmentation_cli_from_a_label_topic(data, tmp_path, capsys):
    bag = write_sequence_bag(data[0][1], tmp_path / "bag")
    topics = BagTopics()
    out = tmp_path / "seg.safetensors"
    args = ["segmentation", "--bags", str(bag), "--image-topic", topics.image,
            "--labels-topic", topics.labels, "--class-names", ",".join(CLASS_NAMES),
            "--model", UNTRAINED_EMBEDDED, "--out", str(out), "--steps", "20", "--device", "cpu",
            "--input-short-side", "96"]  # fmt: skip
    assert probe_main(args) == 0, capsys.readouterr().err
    probe = load_probe(out)
    assert probe.task == "segmentation" and probe.class_names == list(CLASS_NAMES)
    assert {"miou", "pixel_accuracy"} <= set(probe.metrics["validation"])
    # a 32FC1 depth topic given as labels is refused with the encoding named
    bad_out = tmp_path / "bad.safetensors"
    bad_args = [*args[:6], topics.depth, *args[7:12], str(bad_out), *args[13:]]
    assert probe_main(bad_args) == 1
    assert "label encoding '32FC1' is not mono8 or 8UC1" in capsys.readouterr().err
    assert not bad_out.exists()
