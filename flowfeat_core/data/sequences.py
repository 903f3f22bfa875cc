"""Turn a cached frame stream into training sequences: stamp order, no duplicates, no static
stretches, split at time gaps and at scene cuts."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flowfeat_core.data.flow_consistency import consistent_step
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
    cut_thumbnail_diff, cut_consistency: a scene cut (an edited clip, a camera switch) is where
        consecutive thumbnails differ by at least ``cut_thumbnail_diff`` (0-255 scale; a moving
        camera gives 0.3-2, bikes.mp4's cuts 20-60) and fewer than ``cut_consistency`` of the
        pixels have forward-backward consistent DIS flow (a teacher flow across a cut is noise).
    """

    static_threshold: float = 0.5
    max_gap_s: float = 1.0
    gap_factor: float = 5.0
    min_frames: int = 2
    cut_thumbnail_diff: float = 8.0
    cut_consistency: float = 0.2


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
        for shot in _split_at_cuts(kept, stream, frame_filter):
            if len(shot) >= frame_filter.min_frames:
                sequences.append(FrameSequence(source_id, stream.store, shot, stamps[shot]))
    return sequences


#: Long side (px) at which a candidate cut's flow is checked.
_CUT_CHECK_SIDE = 160


def consistent_flow_fraction(frame_a: np.ndarray, frame_b: np.ndarray) -> float:
    """Share of ``frame_a``'s pixels whose DIS flow to ``frame_b`` comes back consistently
    (:func:`flowfeat_core.data.flow_consistency.consistent_step`; RGB uint8 frames of one size)."""
    scale = _CUT_CHECK_SIDE / max(frame_a.shape[:2])
    size = (max(8, round(frame_a.shape[1] * scale)), max(8, round(frame_a.shape[0] * scale)))
    gray_a, gray_b = (cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
                      for f in (frame_a, frame_b))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    forward, backward = dis.calc(gray_a, gray_b, None), dis.calc(gray_b, gray_a, None)
    ys, xs = np.mgrid[0 : gray_a.shape[0], 0 : gray_a.shape[1]].astype(np.float32)
    return float(consistent_step(forward, backward, xs, ys)[2].mean())


def _split_at_cuts(rows: np.ndarray, stream: CachedStream, frame_filter: FrameFilter) -> list[np.ndarray]:
    """Split the kept rows at scene cuts (see :class:`FrameFilter`); only frame pairs whose
    thumbnails changed a lot are checked with flow, so a normal stream costs nothing."""
    cuts = []
    for index in range(1, len(rows)):
        before, after = stream.thumbnails[rows[index - 1]], stream.thumbnails[rows[index]]
        if np.abs(after.astype(np.int16) - before.astype(np.int16)).mean() < frame_filter.cut_thumbnail_diff:
            continue
        fraction = consistent_flow_fraction(stream.store.read(int(rows[index - 1])),
                                            stream.store.read(int(rows[index])))
        if fraction < frame_filter.cut_consistency:
            cuts.append(index)
    return np.split(rows, cuts)


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
