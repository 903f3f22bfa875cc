"""Turn a cached frame stream into training sequences: stamp order, no duplicates, no static
stretches, split at time gaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowfeat_core.data.frame_cache import CachedStream, FrameStore


@dataclass(frozen=True)
class FrameFilter:
    """How a stream is cleaned and split.

    static_threshold: a frame is kept only if the mean absolute difference (0-255 scale) of its
        32 px grayscale thumbnail to the last kept frame's is at least this; a thumbnail equal to
        the last kept one is always dropped. Consecutive frames of opencv-doc's vtest.avi,
        tree.avi and Megamind.avi differ by 0.3-1.9 (median 0.8-1.2), so 0.5 only drops
        frames that barely change, and slow stretches are thinned to visible motion.
    max_gap_s, gap_factor: split where consecutive frames are further apart than
        max(max_gap_s, gap_factor * median frame interval).
    min_frames: sequences shorter than this are dropped.
    """

    static_threshold: float = 0.5
    max_gap_s: float = 1.0
    gap_factor: float = 5.0
    min_frames: int = 2


@dataclass(frozen=True)
class FrameSequence:
    """Frames of one source stream that form one continuous sequence.

    rows: positions of the frames in the source stream (message order in a bag topic, frame
        number in a video or folder); stable across filter settings, so usable as cache keys.
    """

    source_id: str
    store: FrameStore
    rows: np.ndarray
    stamps_ns: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` of this sequence as an HxWx3 uint8 RGB array."""
        return self.store.read(int(self.rows[index]))


def split_stream(source_id: str, stream: CachedStream, frame_filter: FrameFilter
                 ) -> list[FrameSequence]:
    """Order by stamp, drop repeated stamps and near-static frames, split at gaps."""
    stamps = stream.stamps_ns
    order = np.argsort(stamps, kind="stable")
    if len(order):
        order = order[np.concatenate(([True], np.diff(stamps[order]) > 0))]
    sequences = []
    for segment in _split_at_gaps(order, stamps[order], frame_filter):
        kept = _drop_static(segment, stream.thumbnails, frame_filter.static_threshold)
        if len(kept) >= frame_filter.min_frames:
            sequences.append(FrameSequence(source_id, stream.store, kept, stamps[kept]))
    return sequences


def _split_at_gaps(rows: np.ndarray, stamps: np.ndarray, frame_filter: FrameFilter
                   ) -> list[np.ndarray]:
    """Split the stamp-ordered rows wherever the time step exceeds the gap threshold."""
    if len(rows) < 2:
        return [rows]
    intervals = np.diff(stamps)
    threshold = max(frame_filter.max_gap_s * 1e9,
                    frame_filter.gap_factor * float(np.median(intervals)))
    cuts = np.flatnonzero(intervals > threshold) + 1
    return np.split(rows, cuts)


def _drop_static(rows: np.ndarray, thumbnails: np.ndarray, threshold: float) -> np.ndarray:
    """Keep a row only if its thumbnail differs enough from the last kept row's thumbnail."""
    if len(rows) == 0:
        return rows
    kept = [rows[0]]
    reference = thumbnails[rows[0]].astype(np.int16)
    for row in rows[1:]:
        candidate = thumbnails[row].astype(np.int16)
        if np.abs(candidate - reference).mean() >= threshold and np.any(candidate != reference):
            kept.append(row)
            reference = candidate
    return np.asarray(kept, dtype=np.int64)
