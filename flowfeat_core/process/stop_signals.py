"""One rule for signals in every long-running program (ROS nodes and the training CLI): the first
SIGINT or SIGTERM asks the program to stop and close its files cleanly; a later one (a terminal's
Ctrl-C reaches the whole process group, ``ros2 launch`` and ``torchrun`` forward another) is noted
once on stderr and ignored, so shutdown never loses data or prints a KeyboardInterrupt traceback.

Standard library only: programs install this before their heavy imports.
"""

from __future__ import annotations

import os
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Records SIGINT/SIGTERM instead of raising: the first one is the stop request, which the
    program polls through ``requested``.

    In a ROS node rclpy's own handler, installed over this one by ``rclpy.init``, shuts the
    context down (which ends ``spin`` at once) and then calls this handler; before ``rclpy.init``
    and after rclpy's shutdown this handler alone is in place.
    """

    def __init__(self, program: str) -> None:
        """``program`` names the process in the message about a repeated signal."""
        self.program = program
        self.received: list[int] = []

    def install(self) -> None:
        """Replace the default handlers (KeyboardInterrupt / immediate death)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    @staticmethod
    def ignore_from_now_on() -> None:
        """For the process's last moments: Python's finalisation puts back the default handlers
        it replaced (a late signal would then kill the process with status -2), not SIG_IGN."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return bool(self.received)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received.append(signum)
        if len(self.received) == 2:
            # os.write: print() may be interrupted mid-write by this very handler.
            os.write(2, f"{self.program}: {signal.Signals(signum).name} while stopping; "
                        "finishing the clean shutdown first\n".encode())
