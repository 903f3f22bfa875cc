"""Moving a batch of distillation views to the device, normalised for the encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flowfeat_core.models.normalization import PixelNormalizer


@dataclass
class TwoViews:
    """Normalised crops (B x 3 x S x S) and their teacher flow (B x 2 x S x S)."""

    image1: torch.Tensor
    image2: torch.Tensor
    flow1: torch.Tensor
    flow2: torch.Tensor


def to_views(batch: dict[str, torch.Tensor], device: torch.device, mean: tuple, std: tuple) -> TwoViews:
    """Batch of :class:`DistillationViews` items -> :class:`TwoViews` on ``device``."""
    normalizer = PixelNormalizer(mean, std, device)

    def image(key: str) -> torch.Tensor:
        return normalizer.normalize(batch[key].to(device, non_blocking=True))

    return TwoViews(
        image("image1"),
        image("image2"),
        batch["flow1"].to(device, non_blocking=True),
        batch["flow2"].to(device, non_blocking=True),
    )
