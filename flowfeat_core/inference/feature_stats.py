"""Collapse diagnostics of dense features: how many directions they really use.

A distilled decoder can collapse onto the few directions its training flow needs (for a static
camera: "moving person or background"), which erases the structure probes and PCA pictures rely
on. These statistics make that visible: the effective rank (Roy & Vetterli 2007) of the per-pixel
features, the share of variance in the top three principal components, and the mean cosine
similarity of random pixel pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from statistics import median

import torch
import torch.nn.functional as F

LOG = logging.getLogger(__name__)
#: Pixels sampled per image for the statistics (the covariance needs far fewer than a frame has).
MAX_PIXELS = 20_000
#: Total variance of unit-length pixel features below which they count as one point.
COLLAPSED_VARIANCE = 1e-10
#: Below this effective rank the features are treated as collapsed and a warning is raised; the
#: embedded encoder with an untrained decoder scores about 13 on real photos.
COLLAPSE_RANK = 8.0


@dataclass(frozen=True)
class FeatureStats:
    """``effective_rank``: exp of the entropy of the normalised covariance eigenvalues (1 = one
    direction, C = isotropic); ``top3_share``: variance fraction of the top three components;
    ``pair_cosine``: mean cosine similarity of random pixel pairs (1 = all pixels alike)."""

    effective_rank: float
    top3_share: float
    pair_cosine: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _pixel_rows(features: torch.Tensor, max_pixels: int, generator: torch.Generator) -> torch.Tensor:
    """C x H x W (or 1 x C x H x W) -> N x C rows of unit-length pixel features."""
    if features.dim() == 4:
        if features.shape[0] != 1:
            raise ValueError(f"feature statistics take one image, got a batch of {features.shape[0]}")
        features = features[0]
    if features.dim() != 3:
        raise ValueError(f"expected C x H x W features, got shape {tuple(features.shape)}")
    rows = features.flatten(1).T.float()
    if rows.shape[0] > max_pixels:
        rows = rows[torch.randperm(rows.shape[0], generator=generator)[:max_pixels]]
    return F.normalize(rows, dim=1)


def feature_stats(features: torch.Tensor, max_pixels: int = MAX_PIXELS, seed: int = 0) -> FeatureStats:
    """Statistics of one image's dense features (C x H x W), each pixel L2-normalised first."""
    generator = torch.Generator().manual_seed(seed)
    rows = _pixel_rows(features.detach().cpu(), max_pixels, generator)
    if rows.shape[0] < 2:
        raise ValueError("feature statistics need at least two pixels")
    centred = (rows - rows.mean(0)).double()
    covariance = centred.T @ centred / (rows.shape[0] - 1)
    # Unit-length rows whose spread is at rounding level are one point (a collapsed model); its
    # covariance is rounding noise, on which LAPACK's eigensolver can fail to converge.
    if covariance.trace() <= COLLAPSED_VARIANCE:
        return FeatureStats(effective_rank=1.0, top3_share=1.0, pair_cosine=1.0)
    eigenvalues = torch.linalg.eigvalsh(covariance).clamp_min(0).flip(0)
    total = eigenvalues.sum()
    shares = eigenvalues / total
    nonzero = shares[shares > 0]
    entropy = -(nonzero * nonzero.log()).sum()
    pairs = torch.randint(rows.shape[0], (2, min(10_000, rows.shape[0])), generator=generator)
    cosine = (rows[pairs[0]] * rows[pairs[1]]).sum(1).mean()
    return FeatureStats(
        effective_rank=float(entropy.exp()),
        top3_share=float(shares[:3].sum()),
        pair_cosine=float(cosine),
    )


def median_stats(per_image: Iterable[FeatureStats]) -> FeatureStats:
    """Median of each statistic over images (one odd image cannot move it)."""
    items = list(per_image)
    if not items:
        raise ValueError("no images to summarise")
    return FeatureStats(
        effective_rank=median(item.effective_rank for item in items),
        top3_share=median(item.top3_share for item in items),
        pair_cosine=median(item.pair_cosine for item in items),
    )


def warn_if_collapsed(stats: FeatureStats, where: str, threshold: float = COLLAPSE_RANK) -> bool:
    """Log a warning naming ``where`` when the effective rank is below ``threshold``; True if so."""
    if stats.effective_rank >= threshold:
        return False
    LOG.warning(
        "%s: features look collapsed: effective rank %.1f < %.1f, top-3 components hold %.0f %% of "
        "the variance, random pixel pairs %.2f cosine-similar. Train on video with camera motion "
        "(parallax), not only a static camera.",
        where,
        stats.effective_rank,
        threshold,
        100 * stats.top3_share,
        stats.pair_cosine,
    )
    return True


class CollapseWatch:
    """Follows the statistics of features seen during training and warns once each time the
    median effective rank of the last ``window`` measurements falls below ``threshold``."""

    def __init__(self, where: str, threshold: float = COLLAPSE_RANK, window: int = 5) -> None:
        self.where = where
        self.threshold = threshold
        self.window = window
        self.recent: list[FeatureStats] = []
        self.collapsed = False

    def update(self, stats: FeatureStats) -> bool:
        """Record one measurement; True while the features look collapsed."""
        self.recent = [*self.recent, stats][-self.window :]
        if len(self.recent) < self.window:
            return False
        summary = median_stats(self.recent)
        collapsed = summary.effective_rank < self.threshold
        if collapsed and not self.collapsed:
            warn_if_collapsed(summary, self.where, self.threshold)
        self.collapsed = collapsed
        return collapsed
