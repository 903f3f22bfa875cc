"""Frame pairs with their normalised teacher flow, computed once and cached on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from flowfeat_core.data import FramePairDataset
from flowfeat_core.flow_cache import FlowCache, flow_cache_key
from flowfeat_core.teacher_flow import TeacherFlow, make_teacher_flow, normalize_flow


class TeacherFlowPairs(Dataset):
    """Wraps a :class:`FramePairDataset`; items gain ``flow``: the teacher's forward flow from
    frame_a to frame_b on the full frame (2 x H x W float32, normalised per image and channel).

    The teacher is built lazily in each DataLoader worker; with ``cache_dir`` the raw flow is
    stored keyed by source, frame pair, method and size, so later epochs only read it.
    """

    def __init__(self, pairs: FramePairDataset, teacher: str = "dis", cache_dir: Path | None = None):
        self.pairs = pairs
        self.teacher_name = teacher
        self.cache = FlowCache(cache_dir) if cache_dir else None
        self._teacher: TeacherFlow | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """New random time flips for the next epoch."""
        self.pairs.set_epoch(epoch)

    def _flow(self, item: dict[str, Any]) -> torch.Tensor:
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

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.pairs[index]
        return {"frame": item["frame_a"], "flow": self._flow(item)}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_teacher"] = None  # OpenCV flow objects do not pickle; workers build their own
        return state
