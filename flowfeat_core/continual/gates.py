"""Deployment gates: a candidate decoder replaces the deployed one only when its held-out scores
show a real gain and no collapse.

Both models are scored on the same held-out pairs with the same fixed crops
(:func:`flowfeat_core.training.heldout.heldout_batches`), so their numbers are comparable. The
distillation loss alone is not enough: training on static-camera video lowers it while the
features collapse onto a few directions (README, "Training"), so the effective rank is gated too,
both absolutely and against the deployed model's. Loss, EPE and rank can all improve while
real-image quality falls (the synthetic-corpus default did exactly that), so the label-free real
measures on the robot's own held-out frames (propagation along flow-consistent video, temporal
stability; :func:`flowfeat_core.training.heldout.label_free_scores`) must not fall either. When
the bags allow depth from motion, the depth probe trained on the candidate must not predict the
held-out bags' depth worse than the one trained the same way on the deployed model
(continual/depth_step.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from flowfeat_core.inference.feature_stats import COLLAPSE_RANK
from flowfeat_core.training.heldout import HeldOutScores


@dataclass(frozen=True)
class GateThresholds:
    """What a candidate must show on the held-out set. The defaults demand a real gain:
    2 % lower distillation loss, no worse flow reconstruction, and features that keep their
    structure."""

    min_loss_gain: float = 0.02  # relative drop of the held-out loss
    max_epe_increase: float = 0.0  # relative rise of the held-out end-point error allowed
    min_effective_rank: float = COLLAPSE_RANK  # absolute floor (the collapse warning's)
    min_rank_ratio: float = 0.75  # candidate's effective rank over the deployed one's
    max_label_free_drop: float = 0.01  # absolute fall allowed in each label-free real measure
    max_depth_error_rise: float = 0.05  # relative rise allowed in the depth probe's AbsRel

    def __post_init__(self) -> None:
        if not 0 <= self.min_loss_gain < 1:
            raise ValueError(f"min_loss_gain must be in [0, 1), got {self.min_loss_gain}")
        if self.max_epe_increase < 0:
            raise ValueError(f"max_epe_increase must be >= 0, got {self.max_epe_increase}")
        if self.min_effective_rank < 1:
            raise ValueError(f"min_effective_rank must be >= 1, got {self.min_effective_rank}")
        if self.min_rank_ratio < 0:
            raise ValueError(f"min_rank_ratio must be >= 0, got {self.min_rank_ratio}")
        if self.max_label_free_drop < 0:
            raise ValueError(f"max_label_free_drop must be >= 0, got {self.max_label_free_drop}")
        if self.max_depth_error_rise < 0:
            raise ValueError(f"max_depth_error_rise must be >= 0, got {self.max_depth_error_rise}")


@dataclass(frozen=True)
class DepthComparison:
    """Held-out AbsRel of the from-motion depth probes of both models, against the held-out
    bags' motion labels (median-scaled when the labels are relative)."""

    candidate: float
    deployed: float
    metric: bool
    frames: int

    def describe(self) -> str:
        kind = "metric" if self.metric else "median-scaled"
        return (f"depth AbsRel ({kind}, {self.frames} held-out frames) "
                f"{self.deployed:.3f} -> {self.candidate:.3f}")


@dataclass(frozen=True)
class GateDecision:
    """``failures``: one sentence with the numbers per gate the candidate missed (none when it
    passed); ``summary``: every compared number, for logs and diagnostics."""

    failures: tuple[str, ...]
    summary: str

    @property
    def passed(self) -> bool:
        return not self.failures


def judge_candidate(candidate: HeldOutScores, deployed: HeldOutScores,
                    thresholds: GateThresholds = GateThresholds(),
                    depth: DepthComparison | None = None) -> GateDecision:
    """Apply every gate; the candidate passes only if it passes all of them (the depth gate
    only when ``depth`` is given)."""
    if candidate.pairs != deployed.pairs:
        raise ValueError(f"models scored on different held-out sets ({candidate.pairs} and "
                         f"{deployed.pairs} pairs)")
    loss_gain = 1 - candidate.loss / deployed.loss if deployed.loss > 0 else 0.0
    epe_rise = candidate.epe_dense / deployed.epe_dense - 1 if deployed.epe_dense > 0 else 0.0
    rank, deployed_rank = candidate.features.effective_rank, deployed.features.effective_rank
    failures = []
    if loss_gain < thresholds.min_loss_gain:
        failures.append(f"held-out loss {deployed.loss:.4f} -> {candidate.loss:.4f} "
                        f"({loss_gain:+.1%} gain < {thresholds.min_loss_gain:.1%})")
    if epe_rise > thresholds.max_epe_increase:
        failures.append(f"held-out EPE {deployed.epe_dense:.4f} -> {candidate.epe_dense:.4f} "
                        f"(+{epe_rise:.1%} > {thresholds.max_epe_increase:.1%})")
    if rank < thresholds.min_effective_rank:
        failures.append(f"effective rank {rank:.1f} < {thresholds.min_effective_rank:g} (collapsed)")
    if rank < thresholds.min_rank_ratio * deployed_rank:
        failures.append(f"effective rank {deployed_rank:.1f} -> {rank:.1f} (below "
                        f"{thresholds.min_rank_ratio:.0%} of the deployed model's)")
    label_free = [key for key in candidate.label_free if key in deployed.label_free]
    for key in label_free:
        before, after = deployed.label_free[key], candidate.label_free[key]
        if after < before - thresholds.max_label_free_drop:
            failures.append(f"held-out {key} {before:.3f} -> {after:.3f} (fell by more than "
                            f"{thresholds.max_label_free_drop:g})")
    if depth is not None and depth.candidate > depth.deployed * (1 + thresholds.max_depth_error_rise):
        failures.append(f"held-out {depth.describe()} (rose by more than "
                        f"{thresholds.max_depth_error_rise:.0%})")
    summary = (f"{candidate.pairs} held-out pairs: loss {deployed.loss:.4f} -> {candidate.loss:.4f}, "
               f"EPE {deployed.epe_dense:.4f} -> {candidate.epe_dense:.4f}, effective rank "
               f"{deployed_rank:.1f} -> {rank:.1f}")
    summary += "".join(f", {key} {deployed.label_free[key]:.3f} -> {candidate.label_free[key]:.3f}"
                       for key in label_free)
    if depth is not None:
        summary += f", {depth.describe()}"
    return GateDecision(tuple(failures), summary)
