"""Turn model tensors into output arrays: resized/projected features, PCA colours, depth
colours and segmentation ids/overlays. Everything works on a batch (B first)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from flowfeat_core.data.image_size import requested_size


def output_size(width: int, height: int, input_hw: tuple[int, int],
                network_hw: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the outputs: both 0 = network size; one 0 = keep the input aspect."""
    if not width and not height:
        return network_hw
    return requested_size(width, height, input_hw)


def resize_maps(maps: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of B x C x h x w maps (no-op at the same size)."""
    if tuple(maps.shape[-2:]) == tuple(size_hw):
        return maps
    return F.interpolate(maps, size=size_hw, mode="bilinear", align_corners=False)


def resize_images(images: np.ndarray, size_hw: tuple[int, int],
                  interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resize a B x H x W [x C] uint8 batch to ``size_hw``."""
    if images.shape[1:3] == tuple(size_hw):
        return images
    height, width = size_hw
    return np.stack([cv2.resize(image, (width, height), interpolation=interpolation)
                     for image in images])


def to_hwc(maps: torch.Tensor) -> np.ndarray:
    """B x C x H x W tensor -> contiguous B x H x W x C float32 numpy array."""
    return maps.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def colorize_depth(depth: np.ndarray, low: float, high: float) -> np.ndarray:
    """H x W depth -> H x W x 3 uint8 RGB (turbo colormap: near is red, far is blue).

    ``low``/``high`` fix the range; with both 0 the 2nd/98th percentiles of finite values are
    used."""
    finite = depth[np.isfinite(depth)]
    if not (low or high):
        low, high = (np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0))
    scaled = np.clip((np.nan_to_num(depth, nan=high) - low) / max(high - low, 1e-6), 0, 1)
    grey = (255 - scaled * 255 + 0.5).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def class_ids(logits: torch.Tensor, size_hw: tuple[int, int]) -> np.ndarray:
    """B x K x h x w logits -> B x H x W class ids (uint8 when K <= 256, else uint16)."""
    ids = logits.argmax(1, keepdim=True).float()
    if tuple(ids.shape[-2:]) != tuple(size_hw):
        ids = F.interpolate(ids, size=size_hw, mode="nearest")
    dtype = np.uint8 if logits.shape[1] <= 256 else np.uint16
    return ids[:, 0].cpu().numpy().astype(dtype)


def overlay_classes(rgb: np.ndarray, ids: np.ndarray, colors: np.ndarray,
                    alpha: float) -> np.ndarray:
    """Blend per-class ``colors`` (K x 3 uint8) over an H x W x 3 image by ``alpha``."""
    painted = colors[ids.astype(np.intp)]
    blended = rgb.astype(np.float32) * (1 - alpha) + painted.astype(np.float32) * alpha
    return (blended + 0.5).astype(np.uint8)
