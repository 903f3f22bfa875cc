"""Frame pairs (t, t') with 1 <= |t' - t| <= gap inside a sequence, as a torch Dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from flowfeat_core.data.sequences import FrameSequence


class FramePairDataset(Dataset):
    """All frame pairs up to `gap` apart, each randomly time-flipped (deterministic per seed).

    `__getitem__` returns a dict:
      frame_a, frame_b: 3xHxW uint8 RGB torch tensors (default_collate stacks them);
      source_id: the sequence's source (bag path + topic, video or folder path);
      index_a, index_b: frame numbers of frame_a / frame_b within that source, stable across
        filter settings, so (source_id, index_a, index_b) keys a flow cache.
    The flip of item i depends only on (seed, epoch, i); call `set_epoch` to draw new flips.
    Frames are read lazily from the frame cache, so the dataset pickles cheaply to workers.
    """

    def __init__(self, sequences: Sequence[FrameSequence], gap: int = 2, seed: int = 0,
                 flip_probability: float = 0.5) -> None:
        if gap < 1:
            raise ValueError(f"gap must be >= 1, got {gap}")
        self.sequences = list(sequences)
        self.seed = seed
        self.epoch = 0
        self.flip_probability = flip_probability
        pairs = [(number, start, start + step)
                 for number, sequence in enumerate(self.sequences)
                 for step in range(1, gap + 1)
                 for start in range(len(sequence) - step)]
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Select the time flips of `epoch` (before creating the epoch's DataLoader iterator)."""
        self.epoch = epoch

    def __getitem__(self, item: int) -> dict[str, Any]:
        number, first, second = (int(value) for value in self.pairs[item])
        rng = np.random.default_rng((self.seed, self.epoch, item))
        if rng.random() < self.flip_probability:
            first, second = second, first
        sequence = self.sequences[number]
        return {
            "frame_a": _to_chw_tensor(sequence.frame(first)),
            "frame_b": _to_chw_tensor(sequence.frame(second)),
            "source_id": sequence.source_id,
            "index_a": int(sequence.rows[first]),
            "index_b": int(sequence.rows[second]),
        }


def _to_chw_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 array to a 3xHxW uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
