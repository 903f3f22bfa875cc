"""Newest-frame-only hand-off from subscription callbacks to the inference worker.

A callback only stores its message (replacing an unprocessed older one, which counts as
dropped); a message stamped up to ``REORDER_WINDOW_S`` before the newest one already seen from its
camera (delivered late or out of order) is dropped on arrival. A stamp further back is a jump (the
newest stamp was bogus, e.g. in the future, or the camera clock was reset): the frame is accepted
and becomes the new reference, so one bad stamp can never block the stream. The worker takes the
newest message of every camera at once. Nothing queues, so the output rate follows the model and
latency stays bounded however fast the cameras are.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

REORDER_WINDOW_S = 1.0


class Arrival(Enum):
    """What ``FrameMailbox.put`` did with a message."""

    ACCEPTED = "accepted"
    LATE = "late"  # older than the newest, within the reorder window: dropped
    STAMP_JUMP = "stamp_jump"  # older by more than the window: accepted, reference reset


@dataclass
class PendingFrame:
    """A received image message and when it arrived (monotonic seconds)."""

    camera: str
    msg: Any
    received: float


class FrameMailbox:
    """One slot per camera holding only the newest unprocessed frame."""

    def __init__(self) -> None:
        self._slots: dict[str, PendingFrame] = {}
        self._ready = threading.Condition()
        self.dropped: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self._newest_stamp_ns: dict[str, int] = {}

    def put(self, camera: str, msg: Any) -> Arrival:
        """Store ``msg`` as the newest frame of ``camera`` and wake the worker (unless it is
        late); says which of the three cases applied."""
        frame = PendingFrame(camera, msg, time.monotonic())
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        arrival = Arrival.ACCEPTED
        with self._ready:
            self.received[camera] = self.received.get(camera, 0) + 1
            behind_ns = self._newest_stamp_ns.get(camera, stamp_ns) - stamp_ns
            if behind_ns > REORDER_WINDOW_S * 1e9:
                arrival = Arrival.STAMP_JUMP
            elif behind_ns > 0:
                self.dropped[camera] = self.dropped.get(camera, 0) + 1
                return Arrival.LATE
            self._newest_stamp_ns[camera] = stamp_ns
            if camera in self._slots:
                self.dropped[camera] = self.dropped.get(camera, 0) + 1
            self._slots[camera] = frame
            self._ready.notify()
        return arrival

    def take_all(self, timeout: float) -> list[PendingFrame]:
        """Remove and return the newest frame of every camera that has one; waits up to
        ``timeout`` seconds for the first and returns an empty list when none arrived."""
        with self._ready:
            if not self._slots:
                self._ready.wait(timeout)
            frames = list(self._slots.values())
            self._slots.clear()
        return frames

    def wake(self) -> None:
        """Wake a waiting worker (used at shutdown)."""
        with self._ready:
            self._ready.notify_all()

    def total_dropped(self) -> int:
        """Frames replaced by a newer one before the worker took them, over all cameras."""
        with self._ready:
            return sum(self.dropped.values())
