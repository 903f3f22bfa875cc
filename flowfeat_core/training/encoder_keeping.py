"""An information-keeping term for distillation: the features must linearly reconstruct what the
frozen encoder already knows (its hypercolumn).

Measured on the real-image yardstick (:mod:`flowfeat_core.probes.real_yardstick`): distillation
alone, or with the coding-rate term spreading the features, gave features worse on real depth and
propagation than the same decoder untrained; the flow asks only for the few directions that
explain the training motion and lets the rest drift into texture noise. The paper's claim is that
FlowFeat *adds* motion structure to the encoder. This term asks, per sample, that a ridge map from
the student features (plus a bias) explain the encoder's multi-scale features of the same crop;
the loss is the fraction of their variance left unexplained (0 = everything kept, 1 = nothing).
Gradient flows through the closed-form solve, so the features are pushed to span the encoder's
principal directions, while the distillation loss decides how they bend at motion boundaries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Both maps are average-pooled by this before the fit: the Gram matrix needs ~1000 pixels per
#: sample, not every pixel of the crop, and the encoder's finest level has stride 4 anyway.
POOL = 4
#: Ridge penalty of the fit (features are LayerNorm-ed: each pixel has unit variance over channels).
RIDGE_ALPHA = 0.1


def encoder_keeping_loss(
    features: Tensor, hypercolumn: Tensor, alpha: float = RIDGE_ALPHA, directions: int = 0
) -> Tensor:
    """Unexplained variance fraction of ``hypercolumn`` (B x K x H x W, detached) after the best
    ridge map from ``features`` (B x C x H x W) plus a bias, averaged over the batch.

    ``directions`` > 0 replaces the hypercolumn by its first ``directions`` principal components
    in the sample, each scaled to unit variance, so the loss is the mean unexplained fraction per
    direction: the plain fraction is dominated by the few largest directions, and features that
    keep only those have a low effective rank."""
    if features.dim() != 4 or hypercolumn.shape[0] != features.shape[0] or (
        hypercolumn.shape[2:] != features.shape[2:]
    ):
        raise ValueError(
            f"features {tuple(features.shape)} and hypercolumn {tuple(hypercolumn.shape)} must be "
            "B x C x H x W maps of one batch and size"
        )
    with torch.autocast(device_type=features.device.type, enabled=False):
        rows = F.avg_pool2d(features.float(), POOL, ceil_mode=True).flatten(2).transpose(1, 2)
        targets = F.avg_pool2d(hypercolumn.detach().float(), POOL, ceil_mode=True).flatten(2).transpose(1, 2)
        rows = rows - rows.mean(1, keepdim=True)  # the bias, fitted exactly
        targets = targets - targets.mean(1, keepdim=True)
        if directions > 0:
            targets = torch.linalg.svd(targets, full_matrices=False).U[..., :directions]
        count, channels = rows.shape[1], rows.shape[2]
        gram = rows.transpose(1, 2) @ rows / count + alpha * torch.eye(channels, device=rows.device)
        weights = torch.linalg.solve(gram, rows.transpose(1, 2) @ targets / count)
        residual = ((rows @ weights - targets) ** 2).sum(dim=(1, 2))
        total = (targets**2).sum(dim=(1, 2)).clamp_min(1e-12)
        return (residual / total).mean()
