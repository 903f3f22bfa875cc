"""Per-problem throttling of warnings: each distinct problem is logged at most once a period."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_KEYS = 256


class WarningThrottle:
    """Calls ``log(message)`` unless the same ``key`` was logged less than ``period`` s ago."""

    def __init__(self, log: Callable[[str], None], period: float) -> None:
        self._log = log
        self._period = period
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -float("inf")) < self._period:
                return
            if len(self._last) >= MAX_KEYS:
                self._last.clear()
            self._last[key] = now
        self._log(message)
