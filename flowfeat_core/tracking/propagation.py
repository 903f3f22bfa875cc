"""Label propagation (the DINO / STC video object segmentation protocol), streaming.

Each target frame's pixel features are compared (cosine similarity) with those of an anchor
frame, whose labels are given, and of the last few predicted frames; every target cell keeps its
``topk`` most similar context cells within a spatial radius, weights them by a softmax with
``temperature`` and averages their soft labels. One implementation serves the offline benchmark
(:func:`propagate_labels`) and the live tracker (:class:`LabelPropagator`), so the node's masks
are the benchmark's.

The radius restriction is computed tile by tile: a tile of ``TILE`` x ``TILE`` target cells is
compared with the context cells within ``radius`` of the tile only, which gives exactly the
candidates of a dense, masked affinity at a fraction of its cost (a frame of 30 x 40 cells with a
radius of 6 compares each cell with 4 x 169 candidates instead of 4 x 1200).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

#: Channels of one OpenCV 5 image (4.x allowed 512): label maps are resized in groups of this many.
OPENCV_MAX_CHANNELS = 128
#: Target cells per tile side of the local affinity.
TILE = 8


@dataclass(frozen=True)
class PropagationConfig:
    """Protocol parameters: context frames besides the anchor, neighbours, softmax temperature,
    spatial radius (in cells of the pooled grid) and pooling stride of the feature maps."""

    context_frames: int = 3
    topk: int = 5
    temperature: float = 0.1
    radius: int = 12
    stride: int = 4


def pool_cells(features: torch.Tensor, stride: int) -> torch.Tensor:
    """1 x C x H x W (or C x H x W) features -> C x h x w cells, average-pooled by ``stride``
    (partial cells at the edges kept) and L2-normalised per cell."""
    pooled = F.avg_pool2d(_batch_of_one(features).float(), stride, stride, ceil_mode=True)
    return F.normalize(pooled, dim=1)[0]


def _batch_of_one(features: torch.Tensor) -> torch.Tensor:
    """1 x C x H x W view of C x H x W or 1 x C x H x W features with the standard strides of
    their memory format: a channels-last slice given a batch dimension by indexing or reshape
    keeps an odd batch stride, which sends pooling to a generic kernel 20x slower."""
    if features.dim() == 4:
        features = features[0]
    if features.permute(1, 2, 0).is_contiguous():  # channels last
        return features.permute(1, 2, 0)[None].permute(0, 3, 1, 2)
    return features.contiguous()[None]


def pool_labels(labels: np.ndarray, num_labels: int, grid_hw: tuple[int, int]) -> torch.Tensor:
    """H x W integer labels (< ``num_labels``) -> K x h x w soft labels on the cell grid."""
    one_hot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), num_labels)
    return F.adaptive_avg_pool2d(one_hot.permute(2, 0, 1).float()[None], grid_hw)[0]


def label_indices(soft: torch.Tensor, size_hw: tuple[int, int]) -> np.ndarray:
    """K x h x w soft labels -> H x W index of the most likely label (uint8, K <= 256), the
    soft labels resized bilinearly first (OpenCV: 15x faster than torch's interpolate here)."""
    if soft.shape[0] > 256:
        raise ValueError(f"{soft.shape[0]} labels: at most 256")
    hwk = np.ascontiguousarray(soft.permute(1, 2, 0).numpy(), dtype=np.float32)
    resized = np.concatenate([  # OpenCV 5 images hold at most 128 channels
        cv2.resize(np.ascontiguousarray(hwk[..., first:first + OPENCV_MAX_CHANNELS]),
                   (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LINEAR
                   ).reshape(*size_hw, -1)
        for first in range(0, hwk.shape[2], OPENCV_MAX_CHANNELS)], axis=2)
    return resized.argmax(2).astype(np.uint8)


def _padded_grid(grid_hw: tuple[int, int]) -> tuple[int, int]:
    return -(-grid_hw[0] // TILE) * TILE, -(-grid_hw[1] // TILE) * TILE


def _tiles(maps: torch.Tensor) -> torch.Tensor:
    """D x h x w -> tiles x D x TILE^2 (the grid padded with zeros to whole tiles)."""
    height, width = _padded_grid(tuple(maps.shape[-2:]))
    padded = F.pad(maps[None], (0, width - maps.shape[-1], 0, height - maps.shape[-2]))
    unfolded = F.unfold(padded, TILE, stride=TILE)  # 1 x (D*T^2) x tiles
    return unfolded[0].view(maps.shape[0], TILE * TILE, -1).permute(2, 0, 1).contiguous()


def _regions(maps: torch.Tensor, radius: int) -> torch.Tensor:
    """D x h x w -> tiles x D x R^2: each tile's cells and those within ``radius`` of it
    (R = TILE + 2 radius; outside the grid: zeros)."""
    height, width = _padded_grid(tuple(maps.shape[-2:]))
    padded = F.pad(maps[None], (radius, radius + width - maps.shape[-1],
                                radius, radius + height - maps.shape[-2]))
    side = TILE + 2 * radius
    unfolded = F.unfold(padded, side, stride=TILE)  # 1 x (D*R^2) x tiles
    return unfolded[0].view(maps.shape[0], side * side, -1).permute(2, 0, 1).contiguous()


def _gather_labels(label_regions: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """tiles x K x R^2 labels at tiles x T^2 x k region indices -> tiles x K x T^2 x k."""
    tiles, num_labels = label_regions.shape[:2]
    flat = indices.reshape(tiles, 1, -1).expand(-1, num_labels, -1)
    return torch.gather(label_regions, 2, flat).view(tiles, num_labels, *indices.shape[1:])


def _window(radius: int) -> torch.Tensor:
    """TILE^2 x R^2 boolean: region cells within ``radius`` (Chebyshev) of each tile cell."""
    side = TILE + 2 * radius
    ty, tx = torch.meshgrid(torch.arange(TILE), torch.arange(TILE), indexing="ij")
    ry, rx = torch.meshgrid(torch.arange(side) - radius, torch.arange(side) - radius,
                            indexing="ij")
    dy = (ty.reshape(-1, 1) - ry.reshape(1, -1)).abs()
    dx = (tx.reshape(-1, 1) - rx.reshape(1, -1)).abs()
    return (dy <= radius) & (dx <= radius)


@dataclass
class ContextFrame:
    """A frame the propagation reads from: its cells and soft labels, both cut into regions."""

    cells: torch.Tensor  # C x h x w
    soft: torch.Tensor  # K x h x w
    key_regions: torch.Tensor  # tiles x C x R^2
    label_regions: torch.Tensor  # tiles x K x R^2


class LabelPropagator:
    """Propagates soft labels frame by frame from an anchor and the latest predictions.

    Memory is bounded: the anchor, up to ``context_frames`` latest predictions and any
    ``extra`` frames the caller keeps (the tracker keeps the last view of a lost object).
    The top-k is taken per context frame and then over their union, which selects the same
    neighbours as one top-k over all context cells without concatenating the frames."""

    def __init__(self, config: PropagationConfig = PropagationConfig()) -> None:
        self.config = config
        self.anchor: ContextFrame | None = None
        self.recent: deque[ContextFrame] = deque(maxlen=config.context_frames)
        self._window = _window(config.radius)
        self._bias: dict[tuple[int, int], torch.Tensor] = {}

    def _bias_for(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        """tiles x TILE^2 x R^2: 0 for region cells inside the grid and within the radius of
        the target cell, -inf for the others (the same for every frame of this grid)."""
        if grid_hw not in self._bias:
            inside = _regions(torch.ones(1, *grid_hw), self.config.radius) > 0
            allowed = inside & self._window[None]
            self._bias[grid_hw] = torch.zeros(allowed.shape).masked_fill_(~allowed, float("-inf"))
        return self._bias[grid_hw]

    def context_frame(self, cells: torch.Tensor, soft: torch.Tensor) -> ContextFrame:
        """``cells`` (C x h x w) with their ``soft`` labels (K x h x w), ready to be read from."""
        radius = self.config.radius
        return ContextFrame(cells, soft, _regions(cells, radius), _regions(soft, radius))

    def set_anchor(self, cells: torch.Tensor, soft: torch.Tensor) -> None:
        """Start over from ``cells`` labelled ``soft`` (the latest predictions are forgotten)."""
        self.anchor = self.context_frame(cells, soft)
        self.recent.clear()

    def predict(self, cells: torch.Tensor, extra: tuple[ContextFrame, ...] = ()) -> torch.Tensor:
        """Soft labels (K x h x w) of ``cells`` from the anchor, ``extra`` and the latest
        predictions; the prediction joins the latest ones."""
        if self.anchor is None:
            raise RuntimeError("no anchor: set_anchor first")
        context = [self.anchor, *extra, *self.recent]
        if any(frame.cells.shape != cells.shape for frame in context):
            raise ValueError(f"cells {tuple(cells.shape)} do not match the context "
                             f"{tuple(self.anchor.cells.shape)}")
        grid_hw = tuple(cells.shape[-2:])
        targets = _tiles(cells).transpose(1, 2).contiguous()  # tiles x T^2 x C
        bias = self._bias_for(grid_hw)
        topk = min(self.config.topk, bias.shape[2])
        values, labels = [], []
        for frame in context:
            affinity = torch.baddbmm(bias, targets, frame.key_regions)  # tiles x T^2 x R^2
            frame_values, indices = affinity.topk(topk, dim=2)
            values.append(frame_values)
            labels.append(_gather_labels(frame.label_regions, indices))
        best, chosen = torch.cat(values, dim=2).topk(topk, dim=2)  # tiles x T^2 x k
        candidates = torch.cat(labels, dim=3)  # tiles x K x T^2 x M*k
        picked = torch.gather(candidates, 3, chosen[:, None].expand(-1, candidates.shape[1], -1, -1))
        weights = torch.softmax(best / self.config.temperature, dim=2)
        soft = self._untile((picked * weights[:, None]).sum(-1), grid_hw)
        self.recent.append(self.context_frame(cells, soft))
        return soft

    @staticmethod
    def _untile(tiles: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """tiles x K x TILE^2 -> K x h x w (the padding cut off)."""
        height, width = _padded_grid(grid_hw)
        folded = F.fold(tiles.permute(1, 2, 0).reshape(1, -1, tiles.shape[0]), (height, width),
                        TILE, stride=TILE)[0]
        return folded[:, :grid_hw[0], :grid_hw[1]].contiguous()


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
    height, width = features.shape[-2:]
    if first_labels.shape != (height, width):
        raise ValueError(f"first mask {first_labels.shape} does not match features {(height, width)}")
    propagator = LabelPropagator(config)
    cells = pool_cells(features[0], config.stride)
    propagator.set_anchor(cells, pool_labels(first_labels, num_labels, tuple(cells.shape[-2:])))
    outputs = [first_labels.astype(np.uint8)]
    for frame in features[1:]:
        soft = propagator.predict(pool_cells(frame, config.stride))
        outputs.append(label_indices(soft, (height, width)))
    return outputs
