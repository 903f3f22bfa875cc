"""Training losses of the probes."""

from __future__ import annotations

import torch
from torch import Tensor

#: Weight of the squared mean log error: 1 is fully scale invariant (relative depth), 0.85 keeps
#: some scale supervision so that metric probes learn metres (Eigen et al. 2014).
METRIC_LAMBDA = 0.85
RELATIVE_LAMBDA = 1.0


def silog_loss(pred_log: Tensor, target_log: Tensor, valid: Tensor, lam: float) -> Tensor:
    """Scale-invariant log loss per image (rows of B x P), averaged over images with valid pixels."""
    weights = valid.float()
    counts = weights.sum(dim=1).clamp_min(1.0)
    difference = (pred_log - target_log) * weights
    mean = difference.sum(dim=1) / counts
    mean_square = (difference**2).sum(dim=1) / counts
    per_image = (mean_square - lam * mean**2).clamp_min(0.0) + 1e-8
    used = weights.sum(dim=1) > 0
    return torch.sqrt(per_image[used]).mean()
