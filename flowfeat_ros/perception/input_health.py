"""Is a camera's input starved? Frames the middleware reports lost on the way in (DDS sample-lost
events) against frames received, over the last few seconds, and what to tell the user.

Large images over best-effort QoS between processes on Fast DDS's default transports arrive as
UDP fragments and most are lost (measured: 10-22 of ~300 frames); the node must say so on
/diagnostics instead of reporting OK at 0 Hz.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from flowfeat_ros.dds_profile import PROFILE_NAME, profile_variable
from flowfeat_ros.package_paths import config_dir

WINDOW_S = 5.0
#: Starved: more than this share of the frames sent in the window never arrived ...
STARVED_LOSS_RATIO = 0.2
#: ... and at least this many were lost (a single lost frame is not a diagnosis).
MIN_LOST_FRAMES = 3


class InputLoss:
    """Thread-safe counts of received and lost frames of one camera, total and recent."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._events: deque[tuple[float, int, int]] = deque()  # (time, received, lost)
        self.received_total = 0
        self.lost_total = 0

    def record_received(self) -> None:
        """One frame arrived."""
        self._record(1, 0)

    def record_lost(self, count: int) -> None:
        """The middleware reported ``count`` more frames lost."""
        self._record(0, count)

    def _record(self, received: int, lost: int) -> None:
        with self._lock:
            now = self._now()
            self._events.append((now, received, lost))
            self.received_total += received
            self.lost_total += lost
            self._forget_before(now - WINDOW_S)

    def _forget_before(self, start: float) -> None:
        while self._events and self._events[0][0] < start:
            self._events.popleft()

    def recent(self) -> tuple[int, int]:
        """(received, lost) over the last ``WINDOW_S`` seconds."""
        with self._lock:
            self._forget_before(self._now() - WINDOW_S)
            return (sum(e[1] for e in self._events), sum(e[2] for e in self._events))


def starvation_reason(label: str, received: int, lost: int) -> str | None:
    """The WARN message for a starved camera (None when its input is healthy): the numbers, the
    likely cause and the fix."""
    if lost < MIN_LOST_FRAMES or lost <= STARVED_LOSS_RATIO * (received + lost):
        return None
    profile = config_dir() / PROFILE_NAME
    return (f"{label} input starved: {lost} of {received + lost} frames lost in transport in the "
            f"last {WINDOW_S:.0f} s (large images over best-effort QoS on Fast DDS's default "
            f"transports); fix: start the camera driver (every process exchanging images with "
            f"this node) with {profile_variable()}={profile}, or set qos_reliability:=reliable")
