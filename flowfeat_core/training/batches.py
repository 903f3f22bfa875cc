"""Turning a batch of (frame, teacher flow) into the two cropped views of the method."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flowfeat_core.crops import crop_resample


@dataclass
class TwoViews:
    """Crops of the same frames and of their teacher flow, resampled to the input size."""

    image1: torch.Tensor
    image2: torch.Tensor
    flow1: torch.Tensor
    flow2: torch.Tensor


def normalise_frames(frames: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """B x 3 x H x W uint8 RGB -> normalised float."""
    mean_t = torch.tensor(mean, device=frames.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=frames.device).view(1, 3, 1, 1)
    return (frames.float() / 255.0 - mean_t) / std_t


def two_views(
    images: torch.Tensor, flow: torch.Tensor, theta1: torch.Tensor, theta2: torch.Tensor, size: int
) -> TwoViews:
    """Crop images and flow with the same affine grids (one pair of thetas per sample)."""
    out_hw = (size, size)
    return TwoViews(
        crop_resample(images, theta1, out_hw),
        crop_resample(images, theta2, out_hw),
        crop_resample(flow, theta1, out_hw),
        crop_resample(flow, theta2, out_hw),
    )
