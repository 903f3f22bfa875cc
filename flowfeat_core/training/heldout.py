"""Held-out evaluation with fixed crops: distillation loss and cross-view flow reconstruction.

Crops are fixed per pair so that two models are scored on identical inputs. Two protocols:

* ``training`` (default): each pair gets one draw from the training crop distribution (two
  independent crops of 0.5-0.75 of the side), seeded, so the score is the distillation loss the
  trainer minimises, measured on frames it never saw.
* ``shifted``: two centre crops of 0.625 of the side moved a quarter of the side apart, so they
  overlap on only ~36 % of their area; a stricter test of how features transfer across views.

The reconstruction error is the end-point error (in normalised flow units) of the flow of view 2
predicted by a ridge regression fitted on view 1; it is computed from the dense features and,
as the baseline, from the encoder's features upsampled bilinearly.

Loss and EPE can both improve while the features get worse on real images (measured: the
synthetic-corpus default lowered both and propagated labels worse than its untrained decoder), so
:func:`label_free_scores` adds the real-image yardstick's label-free video measures on the same
held-out frames: label propagation along forward-backward-consistent flow and temporal stability.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from flowfeat_core.data.pairs import FramePairDataset
from flowfeat_core.data.sequences import FrameSequence
from flowfeat_core.inference.feature_stats import FeatureStats, feature_stats, median_stats
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.real_yardstick import PROPAGATION_GAPS, video_measures
from flowfeat_core.training.batches import to_views
from flowfeat_core.training.distillation import (
    apply_motion_profile,
    distillation_losses,
    solve_motion_profile,
)
from flowfeat_core.training.flow_pairs import DistillationViews

CROP_PROTOCOLS = ("training", "shifted")


@dataclass(frozen=True)
class HeldOutScores:
    """Means over the held-out pairs; ``features``: median collapse statistics of view 1's dense
    features; ``label_free``: the video measures of :func:`label_free_scores` (higher is better),
    when computed."""

    loss: float
    epe_dense: float
    epe_bilinear: float
    pairs: int
    features: FeatureStats
    label_free: dict[str, float] = field(default_factory=dict)


def heldout_batches(
    sequences: Sequence[FrameSequence],
    input_size: int,
    crops: str = "training",
    max_pairs: int = 48,
    teacher: str = "dis",
    cache_dir: Path | None = None,
    seed: int = 1,
) -> list[dict[str, torch.Tensor]]:
    """Deterministic held-out batches: at most ``max_pairs`` pairs spread evenly over the
    sequences, with time flips and crops fixed by ``seed`` (``crops``: one of CROP_PROTOCOLS)."""
    if crops not in CROP_PROTOCOLS:
        raise ValueError(f"unknown crop protocol {crops!r}; choose from {CROP_PROTOCOLS}")
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    pairs = FramePairDataset(sequences, seed=seed)
    views = DistillationViews(pairs, input_size, teacher, cache_dir, fixed_crops=crops == "shifted")
    if not len(views):
        raise ValueError("no frame pairs in the held-out sequences")
    count = min(max_pairs, len(views))
    evenly_spread = [index * len(views) // count for index in range(count)]
    return list(DataLoader(Subset(views, evenly_spread), batch_size=8))


def _epe(
    features1: torch.Tensor, features2: torch.Tensor, flow1: torch.Tensor, flow2: torch.Tensor
) -> torch.Tensor:
    predicted = apply_motion_profile(features2, solve_motion_profile(features1, flow1))
    return (predicted - flow2).norm(dim=1).mean(dim=(1, 2))


@torch.no_grad()
def evaluate_heldout(
    model: FlowFeat, batches: Iterable[dict[str, torch.Tensor]], input_size: int
) -> HeldOutScores:
    """Score ``model`` on batches of :class:`DistillationViews` items (see :func:`heldout_batches`)."""
    model.eval()
    device = next(model.decoder.parameters()).device
    size_hw = (input_size, input_size)
    losses, dense_errors, bilinear_errors, stats = [], [], [], []
    for batch in batches:
        views = to_views(batch, device, model.config.mean, model.config.std)
        multiscale1, coarse1 = model.encode(views.image1)
        multiscale2, coarse2 = model.encode(views.image2)
        dense1, dense2 = model.decode(multiscale1, views.image1), model.decode(multiscale2, views.image2)
        losses.append(distillation_losses(dense1, dense2, views.flow1, views.flow2).total.item())
        dense_errors.append(_epe(dense1, dense2, views.flow1, views.flow2))
        stats.extend(feature_stats(features) for features in dense1)
        up1 = F.interpolate(coarse1, size=size_hw, mode="bilinear", align_corners=False)
        up2 = F.interpolate(coarse2, size=size_hw, mode="bilinear", align_corners=False)
        bilinear_errors.append(_epe(up1, up2, views.flow1, views.flow2))
    if not losses:
        raise ValueError("no held-out batches")
    return HeldOutScores(
        loss=sum(losses) / len(losses),
        epe_dense=torch.cat(dense_errors).mean().item(),
        epe_bilinear=torch.cat(bilinear_errors).mean().item(),
        pairs=sum(len(e) for e in dense_errors),
        features=median_stats(stats),
    )


#: Network input short side of the label-free measures: small enough for a robot's CPU, large
#: enough for the stride-4 propagation grid.
LABEL_FREE_SHORT_SIDE = 128


def label_free_scores(
    models: dict[str, FlowFeat], sequences: Sequence[FrameSequence], max_sequences: int = 4,
    anchors: int = 2, short_side: int = LABEL_FREE_SHORT_SIDE,
) -> dict[str, dict[str, float]]:
    """Name -> propagation (at the yardstick's gaps, where a sequence is long enough) and temporal
    stability of each model's dense features on up to ``max_sequences`` held-out sequences,
    averaged. All models are scored in one pass, so the flow truth and superpixels are computed
    once and every model sees the same pairs."""
    predictors = {
        name: Predictor(model, device=next(model.decoder.parameters()).device, input_short_side=short_side)
        for name, model in models.items()
    }

    def maps(rgb: np.ndarray) -> dict[str, torch.Tensor]:
        return {name: predictor.predict(rgb).float().cpu() for name, predictor in predictors.items()}

    collected: dict[str, dict[str, list[float]]] = {name: {} for name in models}
    usable = [sequence for sequence in sequences if len(sequence) >= 3]
    for sequence in usable[:max_sequences]:
        frames = [sequence.frame(index) for index in range(len(sequence))]
        gaps = tuple(gap for gap in PROPAGATION_GAPS if gap < len(frames))
        for name, measures in video_measures(maps, frames, anchors, gaps).items():
            for key, value in measures.items():
                collected[name].setdefault(key, []).append(value)
    return {
        name: {key: float(np.nanmean(values)) for key, values in measures.items()}
        for name, measures in collected.items()
    }
