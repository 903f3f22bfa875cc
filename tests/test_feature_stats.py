"""Collapse guards: effective rank and top-3 share on known spectra, a deliberately collapsed
model that the held-out scores, the training watch and evaluate's warning all flag, and the
anti-collapse coding-rate term."""

from __future__ import annotations

import logging

import pytest
import torch
from bag_writing import read_video_frames, write_image_bag

from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_core.inference.feature_stats import (
    COLLAPSE_RANK,
    CollapseWatch,
    feature_stats,
    warn_if_collapsed,
)
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.training.heldout import evaluate_heldout, heldout_batches
from flowfeat_core.training.rank_regularizer import coding_rate_loss


def _collapsed_model() -> FlowFeat:
    """The embedded model whose decoder output ignores its input: every pixel gets the same
    feature up to a tiny ramp, i.e. one direction."""
    model = FlowFeat.embedded_default().eval()
    head = model.decoder.scratch.output_conv1[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.weight[:, 0] = torch.linspace(-1, 1, head.weight.shape[0])[:, None, None] * 1e-3
        head.bias.copy_(torch.linspace(-1, 1, head.bias.shape[0]))
    return model


def test_effective_rank_of_known_spectra():
    generator = torch.Generator().manual_seed(0)
    isotropic = feature_stats(torch.randn(64, 40, 40, generator=generator))
    assert isotropic.effective_rank > 55 and isotropic.top3_share < 0.1 and abs(isotropic.pair_cosine) < 0.05
    two_directions = torch.randn(2, 40, 40, generator=generator)
    mixed = torch.einsum("kc,khw->chw", torch.randn(2, 64, generator=generator), two_directions)
    low = feature_stats(mixed)
    assert 1.0 <= low.effective_rank <= 2.05 and low.top3_share > 0.999
    with pytest.raises(ValueError, match="one image"):
        feature_stats(torch.randn(2, 8, 4, 4))


def test_a_collapsed_model_is_flagged_by_heldout_watch_and_warning(tmp_path, caplog):
    model = _collapsed_model()
    healthy = FlowFeat.embedded_default().eval()
    bag = write_image_bag(tmp_path / "vtest", read_video_frames("vtest.avi", 6, 96, start=300))
    batches = heldout_batches(build_frame_sequences(bags=[bag], max_side=96), 64, max_pairs=4)
    collapsed_scores = evaluate_heldout(model, batches, 64)
    healthy_scores = evaluate_heldout(healthy, batches, 64)
    collapsed, healthy_stats = collapsed_scores.features, healthy_scores.features
    assert collapsed.effective_rank < 2 < COLLAPSE_RANK < healthy_stats.effective_rank
    assert collapsed.pair_cosine > 0.99
    caplog.set_level(logging.WARNING)
    assert warn_if_collapsed(collapsed, "collapsed model")
    assert not warn_if_collapsed(healthy_stats, "healthy model")
    assert "collapsed model: features look collapsed" in caplog.text
    assert "healthy model" not in caplog.text
    caplog.clear()
    watch = CollapseWatch("training", window=3)
    states = [watch.update(stats) for stats in [healthy_stats] * 3 + [collapsed] * 4]
    assert states == [False, False, False, False, True, True, True]
    assert caplog.text.count("features look collapsed") == 1, "warns once per fall, not every step"


def test_coding_rate_term_orders_spread_and_collapsed_features_and_has_gradients():
    generator = torch.Generator().manual_seed(0)
    spread = torch.randn(2, 32, 24, 24, generator=generator, requires_grad=True)
    one_direction = torch.randn(2, 1, 24, 24, generator=generator).expand(2, 32, 24, 24)
    low, high = coding_rate_loss(spread), coding_rate_loss(one_direction + 1e-3 * torch.randn(2, 32, 24, 24))
    assert 0 <= low < 0.1 and 0.8 < high <= 1
    low.backward()
    assert spread.grad is not None and torch.isfinite(spread.grad).all()
