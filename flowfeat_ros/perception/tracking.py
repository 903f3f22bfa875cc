"""Object tracking of one camera: prompts in, masks, overlays and per-object boxes out.

Prompts (relative to the camera prefix):
- ``flowfeat/track/prompt`` (sensor_msgs/Image, mono8 or 16UC1 object ids, 0 = background) at
  the input image's or the outputs' size;
- ``flowfeat/track/prompt_region`` (geometry_msgs/PolygonInstanceStamped): one point is a pixel
  (the object grows from it by feature affinity), more points are a box (their bounding box);
  coordinates are input image pixels; ``id`` is the object id (0: the next free one).
A prompt's header stamp names the frame it was drawn on (kept for ``track_history_frames``
processed frames); a zero stamp means the newest frame. Outputs keep the input header:
``flowfeat/track/mask`` (ids), ``flowfeat/track/overlay`` (rgb8) and ``flowfeat/track/objects``
(diagnostic_msgs/DiagnosticArray, one status per object: box, area, confidence, lost or not;
docs/perception.md says why this message type). Tracking runs on the worker thread; prompts and
``~/track_clear`` come from the executor thread, hence the lock.
"""

from __future__ import annotations

import colorsys
import threading
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PolygonInstanceStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from flowfeat_core.tracking.prompts import box_region, mask_coverage, pixel_region
from flowfeat_core.tracking.propagation import pool_cells
from flowfeat_core.tracking.tracker import MAX_OBJECT_ID, ObjectTracker, TrackedObject, TrackFrame
from flowfeat_ros.image_conversion import image_msg_to_array, mono8_to_msg, rgb8_to_msg, uint16_to_msg
from flowfeat_ros.perception import rendering
from flowfeat_ros.perception.parameters import PerceptionSettings
from flowfeat_ros.perception.problems import BAD_PROMPT, TRACK_RESET, ProblemReporter

TRACK_OUTPUTS = frozenset({"track_mask", "track_overlay", "track_objects"})
PROMPT_ENCODINGS = ("mono8", "16UC1")
#: Prompts waiting for a frame not processed yet; more are refused (oldest first).
MAX_PENDING_PROMPTS = 8
PROMPT_QOS = QoSProfile(depth=MAX_PENDING_PROMPTS, reliability=ReliabilityPolicy.RELIABLE)


def _stamp_ns(header: Header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def object_color(object_id: int) -> tuple[int, int, int]:
    """A saturated colour per id, far from its neighbours' (golden-ratio hue steps)."""
    red, green, blue = colorsys.hsv_to_rgb((object_id * 0.618034) % 1.0, 0.85, 1.0)
    return int(red * 255), int(green * 255), int(blue * 255)


@dataclass
class _Prompt:
    """A mask (``ids``) or a region (``points`` for ``object_id``) for the frame ``stamp_ns``."""

    stamp_ns: int
    ids: np.ndarray | None = None
    object_id: int = 0
    points: tuple[tuple[float, float], ...] = ()


@dataclass
class _HistoryFrame:
    stamp_ns: int
    cells: torch.Tensor
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    predicted: tuple[list[int], torch.Tensor] | None = None


class CameraTracking:
    """The tracker, its prompt inputs and the kept frames of one camera."""

    def __init__(self, node: Node, prefix: str, label: str, settings: PerceptionSettings,
                 problems: ProblemReporter) -> None:
        self.label = label
        self.problems = problems
        self.stride = settings.track_stride
        self.overlay_alpha = settings.overlay_alpha
        self.max_pixels = settings.max_input_pixels
        self.tracker = ObjectTracker(settings.propagation(), settings.track_max_objects,
                                     settings.track_lost_fraction)
        self.last_objects: list[TrackedObject] = []
        self._history: deque[_HistoryFrame] = deque(maxlen=settings.track_history_frames)
        self._pending: list[_Prompt] = []
        self._lock = threading.Lock()
        node.create_subscription(Image, f"{prefix}flowfeat/track/prompt", self._on_mask,
                                 PROMPT_QOS)
        node.create_subscription(PolygonInstanceStamped, f"{prefix}flowfeat/track/prompt_region",
                                 self._on_region, PROMPT_QOS)

    # -- prompts (executor thread) ----------------------------------------------------------
    def _refuse(self, reason: str) -> None:
        self.problems.warning(BAD_PROMPT, self.label, f"track prompt ignored: {reason}")

    def _on_mask(self, msg: Image) -> None:
        if msg.width * msg.height > self.max_pixels:
            self._refuse(f"mask {msg.width}x{msg.height} exceeds max_input_pixels")
            return
        if msg.encoding not in PROMPT_ENCODINGS:
            self._refuse(f"encoding {msg.encoding!r} (want {' or '.join(PROMPT_ENCODINGS)} ids)")
            return
        try:
            ids = np.array(image_msg_to_array(msg))
        except ValueError as error:
            self._refuse(str(error))
            return
        if not ids.any():
            self._refuse("the mask is empty (every pixel 0)")
            return
        self._queue(_Prompt(_stamp_ns(msg.header), ids=ids))

    def _on_region(self, msg: PolygonInstanceStamped) -> None:
        points = tuple((float(p.x), float(p.y)) for p in msg.polygon.polygon.points)
        object_id = int(msg.polygon.id)
        if not points:
            self._refuse("the region has no point")
        elif not np.isfinite(points).all():
            self._refuse("the region has a non-finite coordinate")
        elif not 0 <= object_id <= MAX_OBJECT_ID:
            self._refuse(f"object id {object_id} is not in 0..{MAX_OBJECT_ID}")
        else:
            self._queue(_Prompt(_stamp_ns(msg.header), object_id=object_id, points=points))

    def _queue(self, prompt: _Prompt) -> None:
        with self._lock:
            if len(self._pending) >= MAX_PENDING_PROMPTS:
                self._pending.pop(0)
                self._refuse(f"more than {MAX_PENDING_PROMPTS} prompts wait for their frames; "
                             "the oldest is dropped")
            self._pending.append(prompt)

    def clear(self) -> int:
        """Forget every object and waiting prompt; returns how many objects there were."""
        with self._lock:
            self._pending.clear()
            for frame in self._history:
                frame.predicted = None
            self.last_objects = []
            return self.tracker.clear()

    # -- frames (worker thread) -------------------------------------------------------------
    def step(self, header: Header, features: torch.Tensor, rgb: np.ndarray,
             output_hw: tuple[int, int], wanted: frozenset[str]) -> list[tuple[str, object]]:
        """Keep this frame, apply the prompts that name it (or an earlier kept one) and, while
        objects are tracked, return the wanted track messages."""
        with self._lock:
            cells = pool_cells(features, self.stride)
            entry = _HistoryFrame(_stamp_ns(header), cells, tuple(rgb.shape[:2]), output_hw)
            if self._history and self._history[-1].cells.shape != cells.shape:
                self._history.clear()  # a new image size or model: old frames cannot be used
            self._history.append(entry)
            if self.tracker.active and not self.tracker.fits(cells):
                count = self.tracker.clear()
                self.last_objects = []
                self.problems.warning(TRACK_RESET, self.label, f"the frames changed size or "
                                      f"model (cells {tuple(cells.shape)}): the {count} tracked "
                                      "objects were dropped, prompt again")
            self._apply_pending()
            if not self.tracker.active:
                return []
            frame, soft = self.tracker.track(cells, output_hw)
            entry.predicted = (self.tracker.object_ids, soft)
            self.last_objects = frame.objects
        return self._messages(header, frame, rgb, wanted)

    def _apply_pending(self) -> None:
        newest, oldest = self._history[-1].stamp_ns, self._history[0].stamp_ns
        waiting = []
        for prompt in self._pending:
            target = (self._history[-1] if prompt.stamp_ns == 0 else
                      next((f for f in self._history if f.stamp_ns == prompt.stamp_ns), None))
            if target is None:
                if prompt.stamp_ns > newest:
                    waiting.append(prompt)  # its frame may still come
                elif prompt.stamp_ns < oldest:
                    self._refuse(f"its frame is older than the {len(self._history)} frames kept "
                                 "(track_history_frames)")
                else:
                    self._refuse("no processed frame has its stamp (the frame was dropped or "
                                 "never came)")
                continue
            try:
                self._apply(prompt, target)
            except ValueError as error:
                self._refuse(str(error))
        self._pending = waiting

    def _apply(self, prompt: _Prompt, target: _HistoryFrame) -> None:
        grid_hw = tuple(target.cells.shape[-2:])
        if prompt.ids is not None:
            if prompt.ids.shape not in (target.input_hw, target.output_hw):
                raise ValueError(f"mask {prompt.ids.shape[1]}x{prompt.ids.shape[0]} matches "
                                 f"neither the image {target.input_hw[1]}x{target.input_hw[0]} "
                                 f"nor the outputs {target.output_hw[1]}x{target.output_hw[0]}")
            object_ids = [int(i) for i in np.unique(prompt.ids) if i]
            coverage = dict(zip(object_ids, mask_coverage(prompt.ids, object_ids, grid_hw),
                                strict=True))
        else:
            object_id = prompt.object_id or max(self.tracker.object_ids, default=0) + 1
            coverage = {object_id: torch.from_numpy(
                self._region(prompt.points, target, grid_hw)).float()}
        self.tracker.prompt(target.cells, coverage, target.predicted)
        target.predicted = self.tracker.anchor_labels()  # the next prompt on it keeps these

    @staticmethod
    def _region(points: tuple[tuple[float, float], ...], target: _HistoryFrame,
                grid_hw: tuple[int, int]) -> np.ndarray:
        height, width = target.input_hw
        xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
        if xs.min() < 0 or ys.min() < 0 or xs.max() >= width or ys.max() >= height:
            raise ValueError(f"region point outside the {width}x{height} image")
        rows = (ys * grid_hw[0] / height).astype(int)
        cols = (xs * grid_hw[1] / width).astype(int)
        if len(points) == 1:
            return pixel_region(target.cells, int(rows[0]), int(cols[0]))
        return box_region(target.cells, int(rows.min()), int(cols.min()), int(rows.max()),
                          int(cols.max()))

    # -- outputs ----------------------------------------------------------------------------
    def _messages(self, header: Header, frame: TrackFrame, rgb: np.ndarray,
                  wanted: frozenset[str]) -> list[tuple[str, object]]:
        messages: list[tuple[str, object]] = []
        if "track_mask" in wanted:
            build = mono8_to_msg if frame.ids.dtype == np.uint8 else uint16_to_msg
            messages.append(("track_mask", build(frame.ids, header)))
        if "track_overlay" in wanted:
            messages.append(("track_overlay", rgb8_to_msg(self._overlay(frame, rgb), header)))
        if "track_objects" in wanted:
            messages.append(("track_objects", self._objects_msg(header, frame.objects)))
        return messages

    def _overlay(self, frame: TrackFrame, rgb: np.ndarray) -> np.ndarray:
        image = rendering.resize_images(rgb[None], frame.ids.shape)[0].copy()
        for tracked in frame.objects:
            if tracked.box is None:
                continue
            color = object_color(tracked.object_id)
            inside = frame.ids == tracked.object_id
            image[inside] = (image[inside] * (1 - self.overlay_alpha)
                             + np.array(color) * self.overlay_alpha + 0.5).astype(np.uint8)
            x0, y0, x1, y1 = tracked.box
            cv2.rectangle(image, (x0, y0), (x1, y1), color, 1)
            cv2.putText(image, f"{tracked.object_id} {tracked.confidence:.2f}", (x0, max(10, y0 - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
        return image

    def _objects_msg(self, header: Header, objects: list[TrackedObject]) -> DiagnosticArray:
        statuses = []
        for tracked in objects:
            values = {"area_px": tracked.area, "confidence": f"{tracked.confidence:.4f}"}
            if tracked.box is not None:
                values.update(zip(("x_min", "y_min", "x_max", "y_max"), tracked.box, strict=True))
            statuses.append(DiagnosticStatus(
                level=DiagnosticStatus.WARN if tracked.lost else DiagnosticStatus.OK,
                name=f"object {tracked.object_id}", hardware_id=header.frame_id,
                message="lost" if tracked.lost else "tracked",
                values=[KeyValue(key=key, value=str(value)) for key, value in values.items()]))
        return DiagnosticArray(header=header, status=statuses)

    def diagnostic_values(self, prefix: str) -> dict[str, object]:
        """Objects, lost ones and each object's area and confidence for /diagnostics."""
        with self._lock:
            objects, found_again = list(self.last_objects), self.tracker.found_again()
        values: dict[str, object] = {f"{prefix}track_objects": len(objects),
                                     f"{prefix}track_lost": sum(o.lost for o in objects),
                                     f"{prefix}track_found_again": found_again}
        for tracked in objects:
            values[f"{prefix}track_object_{tracked.object_id}_area_px"] = tracked.area
            values[f"{prefix}track_object_{tracked.object_id}_confidence"] = round(
                tracked.confidence, 3)
        return values
