"""Video object segmentation by label propagation (the DINO / STC protocol) and its J&F score.

Each target frame's pixel features are compared (cosine similarity) with those of the first
frame, whose mask is given, and of the last few predicted frames; every target pixel keeps its
``topk`` most similar context pixels within a spatial radius, weights them by a softmax with
``temperature`` and averages their soft labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from flowfeat_core.probes.metrics import boundary_counts, boundary_radius, f_measure


@dataclass(frozen=True)
class PropagationConfig:
    """Protocol parameters: context frames besides the first, neighbours, softmax temperature,
    spatial radius (in cells of the pooled grid) and pooling stride of the feature maps."""

    context_frames: int = 3
    topk: int = 5
    temperature: float = 0.1
    radius: int = 12
    stride: int = 4


def _pooled(features: torch.Tensor, stride: int) -> torch.Tensor:
    """T x C x H x W features average-pooled by ``stride`` and L2-normalised per cell."""
    pooled = F.avg_pool2d(features, stride, stride, ceil_mode=True) if stride > 1 else features
    return F.normalize(pooled, dim=1)


def _neighbourhood(height: int, width: int, radius: int) -> torch.Tensor:
    """HW x HW boolean: cells within ``radius`` (Chebyshev distance) of each other."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return ((ys[:, None] - ys[None]).abs() <= radius) & ((xs[:, None] - xs[None]).abs() <= radius)


@torch.inference_mode()
def propagate_labels(
    features: torch.Tensor,
    first_labels: np.ndarray,
    num_labels: int,
    config: PropagationConfig = PropagationConfig(),
) -> list[np.ndarray]:
    """Label maps (H x W uint8, ids < ``num_labels``) of all frames, the first being ``first_labels``.

    ``features``: T x C x H x W (float) at the label maps' resolution.
    """
    frames, _, height, width = features.shape
    if first_labels.shape != (height, width):
        raise ValueError(f"first mask {first_labels.shape} does not match features {(height, width)}")
    cells = _pooled(features.float(), config.stride)
    grid_h, grid_w = cells.shape[-2:]
    cells = cells.flatten(2)  # T x C x N
    one_hot = F.one_hot(torch.from_numpy(first_labels.astype(np.int64)), num_labels).permute(2, 0, 1).float()
    soft = [F.adaptive_avg_pool2d(one_hot[None], (grid_h, grid_w))[0].flatten(1)]  # K x N
    allowed = _neighbourhood(grid_h, grid_w, config.radius)
    outputs = [first_labels.astype(np.uint8)]
    for target in range(1, frames):
        context = [0, *range(max(1, target - config.context_frames), target)]
        keys = torch.cat([cells[index] for index in context], dim=1)  # C x (M*N)
        labels = torch.cat([soft[index] for index in context], dim=1)  # K x (M*N)
        affinity = cells[target].T @ keys  # N x M*N
        affinity = affinity.masked_fill(~allowed.repeat(1, len(context)), float("-inf"))
        values, indices = affinity.topk(min(config.topk, affinity.shape[1]), dim=1)
        weights = torch.softmax(values / config.temperature, dim=1)
        predicted = (labels[:, indices] * weights[None]).sum(-1)  # K x N
        soft.append(predicted)
        upsampled = F.interpolate(
            predicted.view(1, num_labels, grid_h, grid_w),
            size=(height, width),
            mode="bilinear",
            align_corners=False,
        )
        outputs.append(upsampled[0].argmax(0).numpy().astype(np.uint8))
    return outputs


def jf_scores(
    predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], object_ids: Sequence[int]
) -> dict[str, float]:
    """DAVIS J (region IoU) and F (boundary F-measure) per object, averaged over frames after the
    first and then over objects; ``jf`` is their mean. Both empty counts as a perfect frame."""
    if len(predicted) != len(truth) or len(truth) < 2:
        raise ValueError("need the same number (>= 2) of predicted and true masks")
    if not object_ids:
        raise ValueError("no object to score")
    j_means, f_means = [], []
    for object_id in object_ids:
        j_values, f_values = [], []
        for pred_labels, true_labels in zip(predicted[1:], truth[1:], strict=True):
            pred, true = pred_labels == object_id, true_labels == object_id
            union = (pred | true).sum()
            j_values.append(1.0 if union == 0 else float((pred & true).sum() / union))
            radius = boundary_radius(*true.shape)
            f_values.append(f_measure(*boundary_counts(_mask_boundary(pred), _mask_boundary(true), radius)))
        j_means.append(np.mean(j_values))
        f_means.append(np.mean(f_values))
    j_score, f_score = float(np.mean(j_means)), float(np.mean(f_means))
    return {"j": j_score, "f": f_score, "jf": (j_score + f_score) / 2}


def _mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior
