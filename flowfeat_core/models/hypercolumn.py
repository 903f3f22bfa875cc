"""The hypercolumn baseline: every encoder level upsampled to the image and concatenated.

The paper's strongest training-free baseline. Each level is L2-normalised per pixel so that no
level dominates by its scale; the result has as many channels as all levels together.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def hypercolumn(multiscale: Sequence[torch.Tensor], image_hw: tuple[int, int]) -> torch.Tensor:
    """B x sum(C_l) x H x W from the encoder's multi-scale maps (any order, any strides)."""
    if not multiscale:
        raise ValueError("hypercolumn needs at least one encoder level")
    levels = [
        F.normalize(F.interpolate(level.float(), size=image_hw, mode="bilinear", align_corners=False), dim=1)
        for level in multiscale
    ]
    return torch.cat(levels, dim=1)
