"""An anti-collapse term for distillation: the coding rate of the student's pixel features.

Motion-profile distillation only asks that flow be a linear function of the features. Under the
decoder's per-pixel LayerNorm the cheapest way to satisfy it is to put all feature energy into the
few directions the training flow needs, and the features collapse (measured: effective rank 13 ->
4 on real photos within 200 steps, on static and on moving-camera video alike), erasing the
structure probes and PCA pictures need. The coding rate (Ma et al., "Segmentation of Multivariate
Mixed Data via Lossy Data Coding", 2007; used as MCR^2 by Yu et al., 2020)

    R(Z) = 1/2 logdet(I + C / (n eps^2) Z^T Z)

of n unit-length, centred pixel features Z (n x C) is a smooth, concave function of the
covariance eigenvalues, largest when the features use all C directions equally. The loss is
``1 - R / R_max`` (0 = isotropic, ~1 = one direction), so it is on the scale of the distillation
loss and its weight says how much flow fit may be traded for spread.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: Distortion eps^2 of the coding rate (the value MCR^2 uses).
CODING_EPS2 = 0.5
#: Pixels sampled per batch: the C x C Gram matrix needs a few thousand, not every pixel.
SAMPLED_PIXELS = 4096


def coding_rate_loss(
    features: Tensor, pixels: int = SAMPLED_PIXELS, generator: torch.Generator | None = None
) -> Tensor:
    """``1 - R(Z)/R_max`` of up to ``pixels`` random pixels of B x C x H x W ``features``."""
    if features.dim() != 4:
        raise ValueError(f"features must be B x C x H x W, got shape {tuple(features.shape)}")
    channels = features.shape[1]
    with torch.autocast(device_type=features.device.type, enabled=False):
        rows = features.float().permute(0, 2, 3, 1).reshape(-1, channels)
        if rows.shape[0] > pixels:
            chosen = torch.randperm(rows.shape[0], generator=generator, device="cpu")[:pixels]
            rows = rows[chosen.to(rows.device)]
        unit = F.normalize(rows, dim=1)
        centred = unit - unit.mean(0, keepdim=True)
        count = centred.shape[0]
        scale = channels / (count * CODING_EPS2)
        identity = torch.eye(channels, device=features.device)
        rate = 0.5 * torch.logdet(identity + scale * centred.T @ centred)
        max_rate = 0.5 * channels * math.log1p(1.0 / CODING_EPS2)
        return 1.0 - rate / max_rate
