"""The inference thread, built so that it cannot die silently.

Every exception in a step is caught, counted and handed to ``on_error``, and the loop goes on;
errors while reporting are swallowed too (a logging call once raised inside the handler and ended
the thread while the node looked alive). Should the thread end anyway (a BaseException such as
SystemExit), ``ensure_running`` restarts it and remembers when, so /diagnostics reports ERROR.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

#: How long /diagnostics keeps reporting ERROR after a restart.
RESTART_REPORT_S = 30.0


class InferenceWorker:
    """Runs ``step()`` in a loop on a daemon thread until ``stop()``."""

    def __init__(self, step: Callable[[], None], on_error: Callable[[Exception], None],
                 name: str = "flowfeat-worker") -> None:
        self._step = step
        self._on_error = on_error
        self._name = name
        self._running = False
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.restarts = 0
        self.last_exit = ""
        self._last_restart = -float("inf")

    def start(self) -> None:
        """Start (or restart) the thread."""
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while self._running:
                try:
                    self._step()
                except Exception as error:  # one bad frame or output must not stop the stream
                    self.errors += 1
                    with contextlib.suppress(Exception):  # the count above records it anyway
                        self._on_error(error)
        except BaseException as error:  # the thread ends here; ensure_running() restarts it
            self.last_exit = f"{type(error).__name__}: {error}"

    def ensure_running(self) -> bool:
        """Restart the thread if it ended while it should run; True when it did."""
        if not self._running or self._thread is None or self._thread.is_alive():
            return False
        self.restarts += 1
        self._last_restart = time.monotonic()
        self.start()
        return True

    def recently_restarted(self) -> bool:
        """A restart happened within the last ``RESTART_REPORT_S`` seconds."""
        return time.monotonic() - self._last_restart < RESTART_REPORT_S

    def stop(self, timeout: float) -> None:
        """Ask the loop to end after its current step and wait up to ``timeout`` seconds."""
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=timeout)
