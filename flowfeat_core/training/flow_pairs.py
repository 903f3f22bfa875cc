"""Training samples: two crops of a frame and of its normalised teacher flow.

Teacher flow is computed on the full frame pair, once, and cached on disk; the crops are drawn
per sample (seeded by seed, epoch and index) and resampled to the input size inside DataLoader
workers, so frames of different sizes batch together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from flowfeat_core.data.pairs import FramePairDataset
from flowfeat_core.training.crops import crop_resample, fixed_center_crops, sample_crop_thetas
from flowfeat_core.training.flow_cache import FlowCache, flow_cache_key
from flowfeat_core.training.teacher_flow import TeacherFlow, make_teacher_flow, normalize_flow


class DistillationViews(Dataset):
    """Wraps a :class:`FramePairDataset`. Items: ``image1``/``image2`` (3 x S x S float32 RGB in
    0..255) and ``flow1``/``flow2`` (2 x S x S): two crops of frame t and of the teacher's
    forward flow t -> t' (normalised per image and channel), cut with the same affine grids.

    Crops are drawn per item from the pair dataset's seed and epoch, so they are reproducible;
    ``fixed_crops`` uses two fixed shifted centre crops instead (the stricter held-out protocol).
    """

    def __init__(
        self,
        pairs: FramePairDataset,
        input_size: int,
        teacher: str = "dis",
        cache_dir: Path | None = None,
        crop_scale: tuple[float, float] = (0.5, 0.75),
        fixed_crops: bool = False,
    ) -> None:
        self.pairs = pairs
        self.input_size = input_size
        self.teacher_name = teacher
        self.cache = FlowCache(cache_dir) if cache_dir else None
        self.crop_scale = crop_scale
        self.fixed_crops = fixed_crops
        self._teacher: TeacherFlow | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """New random time flips and crops for the next epoch."""
        self.pairs.set_epoch(epoch)

    def teacher_flow(self, item: dict[str, Any]) -> torch.Tensor:
        """Normalised teacher flow frame_a -> frame_b (2 x H x W), from the cache when present."""
        frame_a = item["frame_a"].permute(1, 2, 0).numpy()
        frame_b = item["frame_b"].permute(1, 2, 0).numpy()
        key = flow_cache_key(
            item["source_id"], item["index_a"], item["index_b"], self.teacher_name, frame_a.shape[:2]
        )
        flow = self.cache.get(key) if self.cache else None
        if flow is None:
            if self._teacher is None:
                self._teacher = make_teacher_flow(self.teacher_name)
            flow = self._teacher(frame_a, frame_b)
            if self.cache:
                self.cache.put(key, flow)
        return normalize_flow(torch.from_numpy(flow).permute(2, 0, 1).contiguous())

    def _thetas(self, index: int, image_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fixed_crops:
            return fixed_center_crops(1, image_hw)
        seed = hash((self.pairs.seed, self.pairs.epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF
        generator = torch.Generator().manual_seed(seed)
        return (
            sample_crop_thetas(1, generator, self.crop_scale, image_hw=image_hw),
            sample_crop_thetas(1, generator, self.crop_scale, image_hw=image_hw),
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.pairs[index]
        frame = item["frame_a"][None].float()
        flow = self.teacher_flow(item)[None]
        theta1, theta2 = self._thetas(index, tuple(frame.shape[-2:]))
        out_hw = (self.input_size, self.input_size)
        return {
            "image1": crop_resample(frame, theta1, out_hw)[0],
            "image2": crop_resample(frame, theta2, out_hw)[0],
            "flow1": crop_resample(flow, theta1, out_hw)[0],
            "flow2": crop_resample(flow, theta2, out_hw)[0],
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_teacher"] = None  # OpenCV flow objects do not pickle; workers build their own
        return state
