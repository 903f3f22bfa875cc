"""Encoder input normalisation: uint8-range RGB pixels <-> the statistics an encoder was trained on."""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PixelNormalizer:
    """Maps B x 3 x H x W RGB tensors in 0..255 to normalised encoder input and back.

    ``mean``/``std`` are per-channel statistics of 0..1 images (as published with the encoder);
    scaling them by 255 once here saves a division of every pixel by 255.
    """

    def __init__(
        self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str = "cpu"
    ) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255.0

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """0..255 RGB (any float or integer dtype) -> normalised float32 input."""
        return (pixels.float() - self.mean) / self.std

    def denormalize(self, normalized: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: 0..255 RGB as float (not clipped)."""
        return normalized * self.std + self.mean

    def to_uint8(self, normalized: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`, rounded and clipped to uint8 (for pictures in logs)."""
        return self.denormalize(normalized).clamp(0, 255).round().to(torch.uint8)
