"""Problems the node survives (bad frames, oversized frames, stamp jumps, processing errors):
counted per class for /diagnostics, and logged at most once per class and camera every period,
saying how many like it were suppressed since.

Throttling per class, not per message text: 444 bad frames of distinct sizes must not print 363
lines. Warnings and errors are logged from separate call sites because rclpy refuses one call
site logging at two severities (it raises ValueError, which once killed the worker thread).
"""

from __future__ import annotations

import threading
import time
from typing import Any

BAD_IMAGE = "bad_image"
TOO_LARGE = "too_large"
BAD_CAMERA_INFO = "bad_camera_info"
STAMP_JUMP = "stamp_jump"
POINTS_UNAVAILABLE = "points_unavailable"
PCA_BASIS_UNUSABLE = "pca_basis_unusable"
PROCESSING_ERROR = "processing_error"
BAD_PROMPT = "bad_prompt"
TRACK_RESET = "track_reset"
KINDS = (BAD_IMAGE, TOO_LARGE, BAD_CAMERA_INFO, STAMP_JUMP, POINTS_UNAVAILABLE,
         PCA_BASIS_UNUSABLE, PROCESSING_ERROR, BAD_PROMPT, TRACK_RESET)


class ProblemReporter:
    """Thread-safe counts per problem class and throttled log lines per (camera, class)."""

    def __init__(self, logger: Any, period_s: float) -> None:
        self._logger = logger
        self._period_s = period_s
        self._lock = threading.Lock()
        self._last_logged: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)

    def _due(self, kind: str, where: str, message: str) -> str | None:
        """Count the problem; the line to log now, or None while it is throttled."""
        if kind not in self.counts:
            raise ValueError(f"unknown problem class {kind!r}")
        key = (where, kind)
        now = time.monotonic()
        with self._lock:
            self.counts[kind] += 1
            if now - self._last_logged.get(key, -float("inf")) < self._period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._last_logged[key] = now
            suppressed = self._suppressed.pop(key, 0)
        more = f" ({suppressed} more {kind} problems since the last report)" if suppressed else ""
        return f"{where}: {message}{more}"

    def warning(self, kind: str, where: str, message: str) -> None:
        """A problem the node works around (the frame or output is skipped)."""
        line = self._due(kind, where, message)
        if line is not None:
            self._logger.warning(line)

    def error(self, kind: str, where: str, message: str) -> None:
        """A failure that should not happen (e.g. processing raised)."""
        line = self._due(kind, where, message)
        if line is not None:
            self._logger.error(line)

    def diagnostic_values(self) -> dict[str, int]:
        """``problems_<class>`` counts of every class seen so far."""
        with self._lock:
            return {f"problems_{kind}": count for kind, count in self.counts.items() if count}
