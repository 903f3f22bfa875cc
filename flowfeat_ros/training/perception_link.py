"""The trainer's view of the perception node: its latency (training yields to it), and getting it
to serve the deployed file, confirmed from its own /diagnostics.

Called from the trainer's round thread while the node's executor spins in the main thread:
requests are sent asynchronously and waited on with events, never by spinning here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from std_srvs.srv import Trigger

from flowfeat_ros.diagnostics import level_value
from flowfeat_ros.perception.status_keys import (
    CHECKPOINT,
    LAST_LOAD_ERROR,
    PROCESSED_FRAMES,
    RECEIVED_FRAMES,
    STAMP_LATENCY_MEDIAN,
    STATUS_KIND,
)

#: A perception status older than this is not used to pause training (the node may be gone).
FRESH_S = 5.0


class PerceptionUnavailableError(RuntimeError):
    """The perception node did not answer in time (not running, or busy)."""


class PerceptionRefusedError(RuntimeError):
    """The perception node answered that it could not load the deployed model."""


class PerceptionIdleError(RuntimeError):
    """The perception node loaded the deployed model but receives no camera frames, so its
    outputs cannot be confirmed (yet)."""


@dataclass(frozen=True)
class PerceptionStatus:
    """The parts of the perception node's /diagnostics status the trainer acts on."""

    received: float  # time.monotonic() when it arrived
    number: int  # statuses received before this one
    processing: bool  # its processed_frames grew since the status before
    receiving: bool  # its received_frames grew since the status before
    level: int
    checkpoint: str
    load_error: str
    latency_ms: float | None


def _same_file(checkpoint: str, deployed: Path) -> bool:
    return bool(checkpoint) and Path(checkpoint).expanduser().resolve() == deployed.resolve()


class PerceptionLink:
    """Talks to the perception node ``name``: absolute (``/robot/perception``) or relative to
    this node's namespace (``perception``, the default, finds it in the same namespace)."""

    def __init__(self, node: Node, name: str, stop: threading.Event) -> None:
        """``stop``: set when the node shuts down; every wait here ends then."""
        self._stop = stop
        namespace = node.get_namespace().rstrip("/")
        self.name = name if name.startswith("/") else f"{namespace}/{name}"
        self._status_name = f"{self.name}: {STATUS_KIND}"
        self._status: PerceptionStatus | None = None
        self._processed = 0
        self._received = 0
        #: time.monotonic() of the newest status whose processed_frames grew.
        self.last_processing = -float("inf")
        self._lock = threading.Lock()
        self._reload = node.create_client(Trigger, f"{self.name}/reload")
        self._parameters = AsyncParameterClient(node, self.name)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name != self._status_name:
                continue
            values = {kv.key: kv.value for kv in status.values}
            latency = values.get(STAMP_LATENCY_MEDIAN)
            processed = int(values.get(PROCESSED_FRAMES, 0))
            received = int(values.get(RECEIVED_FRAMES, 0))
            with self._lock:
                previous = self._status
                self._status = PerceptionStatus(
                    time.monotonic(), previous.number + 1 if previous else 0,
                    previous is not None and processed > self._processed,
                    previous is not None and received > self._received, level_value(status.level),
                    values.get(CHECKPOINT, ""), values.get(LAST_LOAD_ERROR, ""),
                    float(latency) if latency else None)
                self._processed, self._received = processed, received
                if self._status.processing:
                    self.last_processing = self._status.received

    def status(self) -> PerceptionStatus | None:
        """The newest status received, if any."""
        with self._lock:
            return self._status

    def fresh_status(self) -> PerceptionStatus | None:
        """The newest status if it arrived in the last FRESH_S seconds (the node is up)."""
        status = self.status()
        if status is None or time.monotonic() - status.received > FRESH_S:
            return None
        return status

    def latency_ms(self) -> float | None:
        """The node's median stamp-to-output latency while it is processing frames, else None
        (a camera that stopped leaves the last median in its diagnostics)."""
        status = self.fresh_status()
        return status.latency_ms if status is not None and status.processing else None

    def serves(self, deployed: Path) -> bool | None:
        """Whether the node's fresh status names ``deployed`` (None: no fresh status)."""
        status = self.fresh_status()
        return None if status is None else _same_file(status.checkpoint, deployed)

    def serve(self, deployed: Path, timeout_s: float, reload: bool = True) -> str:
        """Make the node serve ``deployed``: point its ``checkpoint`` parameter there if it names
        another model, then ``~/reload`` (which loads the file from disk and answers once it is
        running or refused); without ``reload``, a node already on ``deployed`` is left as is.
        Returns what happened; raises PerceptionUnavailableError or PerceptionRefusedError."""
        deadline = time.monotonic() + timeout_s
        # A request sent before the service is discovered is lost, not queued.
        if not self._parameters.wait_for_services(timeout_sec=min(timeout_s, 10.0)):
            raise PerceptionUnavailableError(f"{self.name}'s parameter services are not available")
        current = self._wait(self._parameters.get_parameters(["checkpoint"]), deadline,
                             "get its checkpoint parameter")
        checkpoint = current.values[0].string_value if current.values else ""
        if _same_file(checkpoint, deployed) and not reload:
            return f"{self.name} already serves {deployed}"
        if not _same_file(checkpoint, deployed):
            answer = self._wait(self._parameters.set_parameters(
                [Parameter("checkpoint", value=str(deployed))]), deadline,
                f"set its checkpoint parameter to {deployed}")
            result = answer.results[0]
            if not result.successful:
                raise PerceptionRefusedError(f"{self.name} refused checkpoint:={deployed}: "
                                        f"{result.reason}")
        if not self._reload.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
            raise PerceptionUnavailableError(f"{self.name}/reload is not available")
        reply = self._wait(self._reload.call_async(Trigger.Request()), deadline, "reload")
        if not reply.success:
            raise PerceptionRefusedError(f"{self.name}: {reply.message}")
        return reply.message

    def confirm(self, deployed: Path, timeout_s: float) -> str | None:
        """Call right after :meth:`serve`: waits for statuses sent after the reload (the first
        received from now on may predate it) and checks that they name ``deployed``, with no load
        error and no ERROR level, and that frames are processed again: a deploy is confirmed by
        outputs flowing, not by the absence of a load error. Returns the problem, or None.
        Raises PerceptionIdleError when the model loaded but no camera frame arrives (two
        statuses in a row), PerceptionUnavailableError when no status arrives in time."""
        start = self.status()
        first = start.number + 2 if start else 1
        deadline = time.monotonic() + timeout_s
        idle, checked = 0, None
        while time.monotonic() < deadline and not self._stop.is_set():
            status = self.status()
            if status is not None and status.number >= first and status.number != checked:
                checked = status.number
                if not _same_file(status.checkpoint, deployed):
                    return f"serves {status.checkpoint or 'an unknown model'}, not {deployed}"
                if status.load_error:
                    return f"load error: {status.load_error}"
                if status.level >= level_value(DiagnosticStatus.ERROR):
                    return "its diagnostics report an error"
                if status.number > first:  # the status before it was sent after the reload too
                    if status.processing:
                        return None
                    idle = 0 if status.receiving else idle + 1
                    if idle >= 2:
                        raise PerceptionIdleError("no camera frames since the reload")
            self._stop.wait(0.1)
        if checked is not None:
            return f"frames arrive but none was processed within {timeout_s:.0f} s"
        raise PerceptionUnavailableError(f"no new diagnostics from {self.name} within "
                                         f"{timeout_s:.0f} s")

    def _wait(self, future, deadline: float, what: str):
        done = threading.Event()
        future.add_done_callback(lambda _future: done.set())
        while not done.wait(0.1):
            if self._stop.is_set() or time.monotonic() > deadline:
                future.cancel()
                raise PerceptionUnavailableError(f"{self.name} did not answer ({what})")
        if future.result() is None:
            raise PerceptionUnavailableError(f"{self.name} did not answer ({what})")
        return future.result()
