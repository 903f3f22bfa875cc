"""Affine crop sampling and resampling: exact pixel mapping, alignment across resolutions, seeds."""

from __future__ import annotations

import pytest
import torch

from flowfeat_core.training.crops import crop_resample, fixed_center_crops, sample_crop_thetas


def _pixel_coordinates(height: int, width: int) -> torch.Tensor:
    """1 x 2 x H x W image whose channels are the x and y pixel indices."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([xs, ys]).float()[None]


def _normalised_coordinates(height: int, width: int) -> torch.Tensor:
    """1 x 2 x H x W field of pixel-centre coordinates in [-1, 1] (align_corners=False)."""
    xs = (2 * torch.arange(width) + 1) / width - 1
    ys = (2 * torch.arange(height) + 1) / height - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).float()[None]


def _boxes(theta: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Thetas -> B x 4 pixel boxes (top, left, height, width)."""
    height, width = image_hw
    crop_w = theta[:, 0, 0] * width
    crop_h = theta[:, 1, 1] * height
    left = (theta[:, 0, 2] + 1) * width / 2 - crop_w / 2
    top = (theta[:, 1, 2] + 1) * height / 2 - crop_h / 2
    return torch.stack([top, left, crop_h, crop_w], dim=1)


def test_same_size_crop_returns_exact_pixels() -> None:
    """A crop resampled to its own pixel size copies exactly the boxed pixels."""
    image_hw = (48, 64)
    thetas = sample_crop_thetas(6, torch.Generator().manual_seed(3), image_hw=image_hw)
    image = _pixel_coordinates(*image_hw)
    for theta, (top, left, crop_h, crop_w) in zip(thetas, _boxes(thetas, image_hw), strict=True):
        top, left, crop_h, crop_w = (round(v.item()) for v in (top, left, crop_h, crop_w))
        crop = crop_resample(image, theta[None], (crop_h, crop_w))
        expected = image[:, :, top : top + crop_h, left : left + crop_w]
        torch.testing.assert_close(crop, expected, rtol=0, atol=1e-4)


def test_downsampled_crop_samples_expected_coordinates() -> None:
    """Resampling to 16 x 16 samples pixel x = left + (c + 0.5) * w / 16 - 0.5 (and y likewise)."""
    image_hw = (60, 80)
    out_hw = (16, 16)
    thetas = sample_crop_thetas(4, torch.Generator().manual_seed(0), image_hw=image_hw)
    crops = crop_resample(_pixel_coordinates(*image_hw).expand(4, -1, -1, -1), thetas, out_hw)
    steps = torch.arange(16).float() + 0.5
    for crop, (top, left, crop_h, crop_w) in zip(crops, _boxes(thetas, image_hw), strict=True):
        expected_x = left + steps * crop_w / 16 - 0.5
        expected_y = top + steps * crop_h / 16 - 0.5
        torch.testing.assert_close(crop[0], expected_x.expand(16, -1), rtol=0, atol=1e-3)
        torch.testing.assert_close(crop[1], expected_y[:, None].expand(-1, 16), rtol=0, atol=1e-3)


def test_image_and_flow_crops_align_across_resolutions() -> None:
    """The same theta crops a 96 x 128 frame and its 48 x 64 flow to the same field of view."""
    thetas = sample_crop_thetas(5, torch.Generator().manual_seed(1), image_hw=(96, 128))
    frame_crop = crop_resample(
        _normalised_coordinates(96, 128).expand(5, -1, -1, -1), thetas, (20, 20)
    )
    flow_crop = crop_resample(
        _normalised_coordinates(48, 64).expand(5, -1, -1, -1), thetas, (20, 20)
    )
    torch.testing.assert_close(frame_crop, flow_crop, rtol=0, atol=1e-5)


def test_crops_stay_inside_with_sampled_scale() -> None:
    image_hw = (120, 160)
    thetas = sample_crop_thetas(2000, torch.Generator().manual_seed(7), image_hw=image_hw)
    top, left, crop_h, crop_w = _boxes(thetas, image_hw).T
    eps = 1e-3
    assert (top >= -eps).all() and (left >= -eps).all()
    assert (top + crop_h <= 120 + eps).all() and (left + crop_w <= 160 + eps).all()
    assert (crop_h >= 60 - eps).all() and (crop_h <= 90 + eps).all()
    # Aspect kept: both sides use the same scale (up to whole-pixel rounding).
    assert ((crop_h / 120 - crop_w / 160).abs() <= 1 / 120 + eps).all()
    # Positions and scales cover their ranges.
    assert top.min() < 3 and (top + crop_h).max() > 117
    assert crop_h.min() < 62 and crop_h.max() > 88


def test_sampling_is_deterministic_by_seed() -> None:
    def draw(seed: int) -> torch.Tensor:
        return sample_crop_thetas(8, torch.Generator().manual_seed(seed), image_hw=(224, 224))

    torch.testing.assert_close(draw(5), draw(5), rtol=0, atol=0)
    assert not torch.equal(draw(5), draw(6))


def test_fixed_center_crops_overlap_deterministically() -> None:
    image_hw = (64, 96)
    first, second = fixed_center_crops(3, image_hw)
    again_first, again_second = fixed_center_crops(3, image_hw)
    assert torch.equal(first, again_first) and torch.equal(second, again_second)
    box1, box2 = _boxes(first, image_hw)[0], _boxes(second, image_hw)[0]
    torch.testing.assert_close(box1, torch.tensor([4.0, 6.0, 40.0, 60.0]))
    torch.testing.assert_close(box2, torch.tensor([20.0, 30.0, 40.0, 60.0]))


def test_rejects_bad_arguments() -> None:
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="scale"):
        sample_crop_thetas(2, generator, (0.8, 0.5), image_hw=(32, 32))
    with pytest.raises(ValueError, match="shift"):
        fixed_center_crops(1, (32, 32), scale=0.75, shift=0.2)
    with pytest.raises(ValueError, match="theta"):
        crop_resample(torch.zeros(2, 3, 8, 8), torch.zeros(1, 2, 3), (4, 4))
