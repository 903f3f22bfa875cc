"""Affine crops for distillation: random training crops, fixed evaluation crops, resampling.

A crop is a pixel box (top, left, height, width) of an H x W image, expressed as a 2 x 3 matrix
``theta`` for ``F.affine_grid(..., align_corners=False)``: normalised output coordinates u in
[-1, 1] map to input coordinates ``theta[:, :2] @ u + theta[:, 2]``. Boxes are snapped to whole
pixels of ``image_hw`` (as the reference does), but the same thetas crop any tensor that covers the
same field of view at another resolution (the image at full size, the teacher flow, the features).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_image_hw(image_hw: tuple[int, int]) -> tuple[int, int]:
    height, width = (int(side) for side in image_hw)
    if height < 1 or width < 1:
        raise ValueError(f"image_hw must be positive, got {image_hw}")
    return height, width


def _box_thetas(
    top: Tensor, left: Tensor, crop_hw: tuple[Tensor, Tensor], image_hw: tuple[int, int]
) -> Tensor:
    """Pixel boxes (1-D tensors of length B) -> B x 2 x 3 float32 affine_grid matrices."""
    height, width = image_hw
    crop_h, crop_w = (side.float() for side in crop_hw)
    theta = torch.zeros(top.shape[0], 2, 3)
    theta[:, 0, 0] = crop_w / width
    theta[:, 1, 1] = crop_h / height
    theta[:, 0, 2] = (2 * left.float() + crop_w) / width - 1
    theta[:, 1, 2] = (2 * top.float() + crop_h) / height - 1
    return theta


def sample_crop_thetas(
    batch: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.5, 0.75),
    *,
    image_hw: tuple[int, int],
) -> Tensor:
    """Random crops, one per sample, as B x 2 x 3 thetas (CPU, float32).

    Each crop's sides are ``int(s * side)`` for s drawn uniformly from ``scale`` (so the crop keeps
    the image's aspect ratio); its top-left pixel is drawn uniformly so the crop lies fully inside.
    All randomness comes from ``generator``.
    """
    height, width = _check_image_hw(image_hw)
    low, high = scale
    if not 0 < low <= high <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    fractions = low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64)
    crop_h = (fractions * height).floor().long().clamp_min(1)
    crop_w = (fractions * width).floor().long().clamp_min(1)
    position = torch.rand(batch, 2, generator=generator, dtype=torch.float64)
    # Uniform integer in [0, side - crop] inclusive.
    top = (position[:, 0] * (height - crop_h + 1)).floor().long()
    left = (position[:, 1] * (width - crop_w + 1)).floor().long()
    return _box_thetas(top, left, (crop_h, crop_w), (height, width))


def fixed_center_crops(
    batch: int, image_hw: tuple[int, int], scale: float = 0.625, shift: float = 0.125
) -> tuple[Tensor, Tensor]:
    """Two deterministic overlapping crops for evaluation, each as B x 2 x 3 thetas.

    Both crops have sides ``int(scale * side)``; their centres sit ``shift`` (a fraction of the
    image side) up-left and down-right of the image centre, so they overlap around the centre.
    """
    height, width = _check_image_hw(image_hw)
    if not 0 < scale <= 1 or not 0 <= shift <= (1 - scale) / 2:
        raise ValueError(
            f"need 0 < scale <= 1 and 0 <= shift <= (1 - scale) / 2, got {scale=}, {shift=}"
        )
    crop_h, crop_w = max(1, int(scale * height)), max(1, int(scale * width))
    thetas = []
    for direction in (-1, 1):
        top = round((height - crop_h) / 2 + direction * shift * height)
        left = round((width - crop_w) / 2 + direction * shift * width)
        top, left = min(max(top, 0), height - crop_h), min(max(left, 0), width - crop_w)
        thetas.append(
            _box_thetas(
                torch.full((batch,), top),
                torch.full((batch,), left),
                (torch.full((batch,), crop_h), torch.full((batch,), crop_w)),
                (height, width),
            )
        )
    return thetas[0], thetas[1]


def crop_resample(
    x: Tensor,
    theta: Tensor,
    out_hw: tuple[int, int],
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> Tensor:
    """Crop B x C x H x W ``x`` with thetas B x 2 x 3 and resample to ``out_hw`` (grid_sample).

    ``padding_mode`` only matters in the outer half pixel of an upsampled crop; "border" keeps
    values there instead of blending them with zeros.
    """
    if x.dim() != 4 or theta.shape != (x.shape[0], 2, 3):
        raise ValueError(
            f"need x B x C x H x W and theta B x 2 x 3, got {tuple(x.shape)}, {tuple(theta.shape)}"
        )
    dtype = x.dtype if x.is_floating_point() else torch.float32
    grid = F.affine_grid(
        theta.to(device=x.device, dtype=dtype),
        [x.shape[0], x.shape[1], int(out_hw[0]), int(out_hw[1])],
        align_corners=False,
    )
    return F.grid_sample(
        x.to(dtype), grid, mode=mode, padding_mode=padding_mode, align_corners=False
    )
