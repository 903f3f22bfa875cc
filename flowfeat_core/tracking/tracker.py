"""Live multi-object tracking by label propagation on the features a model already computes.

Objects are prompted on a frame (a mask of object ids, a box or a pixel) and followed frame by
frame with :class:`LabelPropagator`, the benchmark's protocol. A prompt makes its frame the
anchor: objects already tracked keep the labels predicted for that frame, the new ones are
painted over them, and the latest predictions are forgotten. An object whose area falls under
``lost_fraction`` of its prompted area is *lost*; the last frame that showed it stays in the
memory until it is found again, so that it can be recognised when it comes back. Memory is
bounded: the anchor, ``context_frames`` predictions and one frame per lost object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flowfeat_core.tracking.propagation import (
    ContextFrame,
    LabelPropagator,
    PropagationConfig,
    label_indices,
)

#: Largest object id (ids travel as 16UC1 images; 0 is the background).
MAX_OBJECT_ID = 65535


@dataclass(frozen=True)
class TrackedObject:
    """One object in one frame: ``box`` (x_min, y_min, x_max, y_max, inclusive pixels of the
    label map) is None while the object is not visible; ``confidence`` is the mean propagated
    probability over its pixels' cells."""

    object_id: int
    area: int
    box: tuple[int, int, int, int] | None
    confidence: float
    lost: bool


@dataclass
class TrackFrame:
    """A tracked frame: object ids per pixel (uint8, or uint16 for ids above 255) and objects."""

    ids: np.ndarray
    objects: list[TrackedObject]


@dataclass
class _ObjectState:
    prompted_share: float  # share of the image the prompt covered
    lost: bool = False
    last_view: ContextFrame | None = None
    found_again: int = 0


class ObjectTracker:
    """Tracks prompted objects; all methods run on one thread (the caller serialises)."""

    def __init__(self, config: PropagationConfig, max_objects: int = 16,
                 lost_fraction: float = 0.1) -> None:
        self.config = config
        self.max_objects = max_objects
        self.lost_fraction = lost_fraction
        self._propagator = LabelPropagator(config)
        self._objects: dict[int, _ObjectState] = {}

    @property
    def object_ids(self) -> list[int]:
        """Tracked ids, ascending: label index i + 1 is ``object_ids[i]`` (0 is background)."""
        return sorted(self._objects)

    @property
    def active(self) -> bool:
        """Whether any object is tracked."""
        return bool(self._objects)

    def found_again(self) -> int:
        """How many times a lost object was found again since the last clear."""
        return sum(state.found_again for state in self._objects.values())

    def clear(self) -> int:
        """Forget every object; returns how many there were."""
        count = len(self._objects)
        self._objects.clear()
        self._propagator = LabelPropagator(self.config)
        return count

    def prompt(self, cells: torch.Tensor, coverage: dict[int, torch.Tensor],
               predicted: tuple[list[int], torch.Tensor] | None = None) -> None:
        """Anchor on ``cells`` (C x h x w) with new or re-prompted objects' ``coverage`` (id ->
        h x w share of each cell) painted over ``predicted`` (the ids and soft labels tracked on
        that frame, or None when it has none: tracked objects absent from it are dropped).

        Raises ValueError for an empty prompt, a bad id or too many objects."""
        grid_hw = tuple(cells.shape[-2:])
        if not coverage:
            raise ValueError("the prompt holds no object")
        for object_id, share in coverage.items():
            if not 0 < object_id <= MAX_OBJECT_ID:
                raise ValueError(f"object id {object_id} is not in 1..{MAX_OBJECT_ID}")
            if tuple(share.shape) != grid_hw:
                raise ValueError(f"coverage {tuple(share.shape)} does not match cells {grid_hw}")
            if float(share.sum()) <= 0:
                raise ValueError(f"object {object_id} covers no pixel")
        kept_ids, kept_soft = predicted if predicted is not None else ([], None)
        ids = sorted(set(kept_ids) | set(coverage))
        if len(ids) > self.max_objects:
            raise ValueError(f"{len(ids)} objects: at most {self.max_objects} are tracked "
                             "(track_clear first, or raise track_max_objects)")
        soft = torch.zeros(len(ids) + 1, *grid_hw)
        soft[0] = 1.0
        if kept_soft is not None:
            for index, object_id in enumerate([0, *kept_ids]):
                soft[0 if object_id == 0 else ids.index(object_id) + 1] = kept_soft[index]
        painted = torch.stack(list(coverage.values())).sum(0).clamp(max=1.0)
        soft *= 1 - painted
        for object_id, share in coverage.items():
            soft[ids.index(object_id) + 1] = share
        previous, self._objects = self._objects, {}
        for index, object_id in enumerate(ids, start=1):
            old = previous.get(object_id)
            prompted = (float(soft[index].mean()) if object_id in coverage or old is None
                        else old.prompted_share)
            self._objects[object_id] = _ObjectState(prompted, found_again=old.found_again
                                                    if old else 0)
        self._propagator.set_anchor(cells, soft)

    def fits(self, cells: torch.Tensor) -> bool:
        """Whether ``cells`` can be tracked from the anchor (same channels and grid): a new
        image size or model cannot."""
        anchor = self._propagator.anchor
        return anchor is None or anchor.cells.shape == cells.shape

    def anchor_labels(self) -> tuple[list[int], torch.Tensor]:
        """The tracked ids and the anchor frame's soft labels (what a later prompt on the
        anchor frame paints over)."""
        if self._propagator.anchor is None:
            raise RuntimeError("no object is tracked")
        return self.object_ids, self._propagator.anchor.soft

    def track(self, cells: torch.Tensor, size_hw: tuple[int, int]) -> tuple[TrackFrame, torch.Tensor]:
        """Propagate to ``cells``; returns the frame's labels at ``size_hw`` and its soft labels
        (K x h x w, for a later prompt on this frame). The prompted frame itself keeps its
        prompt's labels (as in the offline protocol, where the first frame is given)."""
        if not self._objects:
            raise RuntimeError("no object is tracked")
        ids = self.object_ids
        anchor = self._propagator.anchor
        if anchor is not None and cells is anchor.cells:
            soft = anchor.soft
        else:
            lost_views = tuple(self._objects[i].last_view for i in ids
                               if self._objects[i].lost and self._objects[i].last_view is not None)
            soft = self._propagator.predict(cells, lost_views)
        indices = label_indices(soft, size_hw)
        lookup = np.array([0, *ids], dtype=np.uint8 if ids[-1] <= 255 else np.uint16)
        cell_best = soft.argmax(0)
        objects = []
        for index, object_id in enumerate(ids, start=1):
            objects.append(self._update(object_id, indices == index, soft[index],
                                        cell_best == index))
        return TrackFrame(lookup[indices], objects), soft

    def _update(self, object_id: int, pixels: np.ndarray, probability: torch.Tensor,
                cells_won: torch.Tensor) -> TrackedObject:
        state = self._objects[object_id]
        area = int(pixels.sum())
        visible = area > 0 and area / pixels.size >= self.lost_fraction * state.prompted_share
        if visible:
            if state.lost:
                state.found_again += 1
            state.lost = False
            recent = self._propagator.recent
            state.last_view = recent[-1] if recent else self._propagator.anchor
        else:
            state.lost = True
        confidence = float(probability[cells_won].mean()) if bool(cells_won.any()) else 0.0
        box = None
        if area:
            rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
            box = (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))
        return TrackedObject(object_id, area, box, confidence, state.lost)
