"""J&F and metrics on hand-made masks; the evaluate CLI end to end on a tiny setting."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from flowfeat_core.cli.evaluate import main as evaluate_main
from flowfeat_core.cli.pca_figure import COLUMNS, ROW_HEIGHT, figure_images
from flowfeat_core.cli.pca_figure import main as figure_main
from flowfeat_core.inference.feature_stats import COLLAPSE_RANK
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.baselines import FEATURE_SETS, FeatureSets
from flowfeat_core.probes.metrics import DepthMetrics, SegmentationMetrics
from flowfeat_core.probes.vos_metrics import jf_scores


def _square(top: int, left: int, side: int = 10, size: int = 40) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = 1
    return mask


def test_jf_of_hand_made_masks():
    truth = [_square(5, 5), _square(5, 5), _square(20, 20)]
    perfect = jf_scores(truth, truth, [1])
    assert perfect == {"j": 1.0, "f": 1.0, "jf": 1.0}
    shifted = [truth[0], _square(5, 10), _square(0, 0)]  # frame 1: half overlap; frame 2: disjoint
    scores = jf_scores(shifted, truth, [1])
    assert scores["j"] == pytest.approx((50 / 150 + 0.0) / 2)
    assert 0.0 < scores["f"] < 1.0
    assert scores["jf"] == pytest.approx((scores["j"] + scores["f"]) / 2)
    with pytest.raises(ValueError, match="no object"):
        jf_scores(truth, truth, [])


def test_depth_and_segmentation_metrics_by_hand():
    depth = DepthMetrics()
    target = np.array([[1.0, 2.0], [4.0, 0.0]], np.float32)
    depth.add(np.array([[1.0, 2.0], [5.0, 9.0]], np.float32), target, target > 0)
    result = depth.result()
    assert result["abs_rel"] == pytest.approx(0.25 / 3)
    assert result["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert result["delta1"] == pytest.approx(2 / 3)  # 5 / 4 = 1.25 is not below 1.25
    segmentation = SegmentationMetrics(2)
    labels = np.array([[0, 0, 1, 1]] * 4, np.uint8)
    segmentation.add(labels, labels)
    assert segmentation.result()["miou"] == 1.0 and segmentation.result()["boundary_f"] == 1.0
    ignored = labels.copy()
    ignored[:, 0] = 255
    wrong = np.ones_like(labels)
    segmentation = SegmentationMetrics(2)
    segmentation.add(wrong, ignored)
    assert segmentation.result()["miou"] == pytest.approx(0.5 * (0 + 8 / 12))


def test_feature_sets_share_one_encoder_pass_and_hypercolumn_levels_are_unit_length():
    model = FlowFeat.embedded_default()
    sets = FeatureSets.for_predictor(Predictor(model, device="cpu", input_hw=(72, 88)))
    rgb = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    maps = sets.maps(rgb)
    levels = list(model.encoder.channels)
    assert list(maps) == list(FEATURE_SETS)
    assert maps["hypercolumn"].shape == (1, sum(levels), 72, 88)
    assert maps["flowfeat"].shape == maps["untrained"].shape == (1, model.config.fdim, 72, 88)
    assert torch.equal(maps["hypercolumn+flowfeat"][:, : sum(levels)], maps["hypercolumn"])
    for level in torch.split(maps["hypercolumn+flowfeat"], [*levels, model.config.fdim], dim=1):
        assert torch.allclose(level.norm(dim=1), torch.ones(1, 72, 88), atol=1e-4)
    assert not torch.allclose(maps["untrained"], maps["flowfeat"]), "a fresh decoder, not the model's"


def test_evaluate_cli_tiny_json(capsys):
    args = [
        "--model",
        "embedded-untrained",
        "--train-sequences",
        "1",
        "--test-sequences",
        "1",
        "--frames",
        "3",
        "--height",
        "64",
        "--width",
        "80",
        "--steps",
        "10",
        "--real-split",
        "none",
        "--json",
    ]
    assert evaluate_main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]) == {*FEATURE_SETS, "trivial"}
    for name in FEATURE_SETS:
        values = report["results"][name]
        assert 0 <= values["miou"] <= 1 and values["abs_rel"] > 0
        assert values["jf"] is None or 0 <= values["jf"] <= 1
        for where in ("test_frames", "real_images"):
            stats = report["feature_stats"][where][name]
            assert stats["effective_rank"] >= 1 and 0 < stats["top3_share"] <= 1
    assert report["teacher_flow_epe"]["dis"]["epe"] < report["teacher_flow_epe"]["dis"]["zero_flow_epe"]
    assert evaluate_main(["--model", "/nonexistent.safetensors"]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert evaluate_main(["--model", "embedded-untrained", "--depth-probes", "default"]) == 1
    assert "depth probe default was trained on another model" in capsys.readouterr().err


@pytest.mark.slow
def test_default_model_beats_its_untrained_decoder_and_bilinear_upsampling_on_real_images(capsys):
    """The decision table (README, "Real-image yardstick"), on the fast subset of the tune split
    (measured: depth R2 0.735 / 0.580 untrained / 0.568 bilinear, propagation gap 2 0.859 / 0.838
    / 0.765, gap 8 0.819 / 0.762 / 0.675, stability 0.997 / 0.991 / 0.986): the shipped decoder
    beats its untrained twin on every real measure, and bilinear upsampling on propagation and
    stability (depth too on this split, but not on the report split's scene, so not asserted)."""
    assert evaluate_main(["--model", "default", "--real-split", "tune", "--real-fast", "--no-synthetic",
                          "--depth-probes", "default", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    real = report["real"]
    # the shipped relative-depth probe (learned from motion, reading the image context) orders
    # real depth (measured: rank correlation 0.60, median-scaled AbsRel 0.28 on the Aloe scene)
    shipped = report["real_depth_probes"]["default"]
    assert shipped["rank_correlation"] > 0.3 and shipped["abs_rel_median_scaled"] < 0.4
    for measure in ("depth_r2", "propagation_gap2", "propagation_gap8"):
        assert real["flowfeat"][measure] > real["untrained"][measure] + 0.01, (measure, real)
    for measure in ("propagation_gap2", "propagation_gap8"):
        assert real["flowfeat"][measure] > real["bilinear"][measure] + 0.01, (measure, real)
    # stability sits near its ceiling of 1: compare what is left of it (0.003 against 0.009
    # untrained and 0.014 bilinear)
    for baseline in ("untrained", "bilinear"):
        assert 1 - real["flowfeat"]["stability"] < 0.5 * (1 - real[baseline]["stability"]), real


@pytest.mark.slow
def test_default_model_beats_its_untrained_decoder_on_the_procedural_benchmark(capsys):
    """The second table (README): on held-out procedural sequences the shipped decoder beats the
    untrained decoder on all six metrics and is not collapsed on real images. The probes are fitted
    for 60 steps instead of README's 300 (measured: the same ranking, e.g. AbsRel 0.298 vs 0.384,
    mIoU 0.374 vs 0.302, J&F 0.623 vs 0.383; 80 s instead of 111 s at 120 steps)."""
    assert evaluate_main(["--model", "default", "--teachers", "dis", "--real-split", "none",
                          "--steps", "60", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    results = report["results"]
    for metric in ("abs_rel", "rmse"):
        assert results["flowfeat"][metric] < results["untrained"][metric], metric
    for metric in ("delta1", "miou", "boundary_f", "jf"):
        assert results["flowfeat"][metric] > results["untrained"][metric], metric
    assert results["flowfeat"]["abs_rel"] < 0.8 * results["trivial"]["abs_rel"]
    assert report["feature_stats"]["real_images"]["flowfeat"]["effective_rank"] >= COLLAPSE_RANK


def test_pca_figure_has_a_row_per_image_and_reports_ranks(tmp_path, capsys):
    out = tmp_path / "figure.png"
    assert figure_main(["--model", "embedded-untrained", "--out", str(out)]) == 0
    picture = cv2.imread(str(out))
    rows = figure_images()
    assert picture.shape[0] == ROW_HEIGHT * len(rows)
    widest = max(round(ROW_HEIGHT * image.shape[1] / image.shape[0]) for image in rows.values())
    assert picture.shape[1] == widest * (1 + len(COLUMNS))
    printed = capsys.readouterr().out
    assert all(name in printed for name in rows) and printed.count("hypercolumn rank") == len(rows)
