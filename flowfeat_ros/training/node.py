"""``trainer`` node: the on-robot loop (flowfeat_core/continual/) as a supervised background job.

Every ``check_period_s`` it takes the recorder's finished bags into its replay store; once
``min_new_bags`` new training bags arrived (or on ``~/train_now``, or at start-up when a round
was cut short) it trains a round from the deployed checkpoint in its own thread, at low CPU
priority, pausing while the perception node processes frames slower than
``max_perception_latency_ms``. A candidate that passes the gates is deployed atomically; the
perception node is then pointed at the deployed file and reloaded, and the swap is confirmed from
its /diagnostics once it processes frames with it (with the camera idle, the deploy waits,
reported on /diagnostics, for the first frame). A deployed model the perception node cannot load
or that makes it report an error is rolled back automatically; ``~/rollback`` does it by hand
(and drops the round in progress, which started from the rolled-back model). State: /diagnostics,
TensorBoard under ``work_dir``.
Run: ``trainer_node --ros-args --params-file config/trainer.yaml``.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from std_srvs.srv import Trigger

from flowfeat_core.continual.deployment import Deployment, DeploymentError
from flowfeat_core.continual.loop import ContinualLoop
from flowfeat_core.continual.training_round import STATE_FILE, RoundResult
from flowfeat_ros.diagnostics import WALL_CLOCK, level_value, publish_status
from flowfeat_ros.parameter_declarations import declare_settings
from flowfeat_ros.training.parameters import TrainerSettings
from flowfeat_ros.training.perception_link import (
    PerceptionIdleError,
    PerceptionLink,
    PerceptionRefusedError,
    PerceptionUnavailableError,
)

WARN_PERIOD_S = 30.0
#: How ``serving`` starts for a deploy that perception loaded but has had no frame to run on.
AWAITING_OUTPUTS = "perception loaded it, outputs not confirmed yet"
REJECTION_WARN_S = 600.0  # a rejected bag keeps the status at WARN this long


class TrainerNode(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        """Declare parameters, open the work folder, start the round thread."""
        super().__init__("trainer")
        p = declare_settings(self, TrainerSettings)
        self.params = p
        self.loop = ContinualLoop(Path(p.bags_dir), Path(p.work_dir), Path(p.deployed),
                                  p.initial, p.loop_settings(progress_bar=False))
        self.deployment = Deployment(self.loop.deployed, p.keep_deployed)
        if p.nice:
            os.nice(p.nice)
        torch.set_num_threads(p.cpu_threads)
        self._stop = threading.Event()
        self.link = (PerceptionLink(self, p.perception_node, self._stop)
                     if p.perception_node else None)
        self._wake = threading.Event()
        self._serve_lock = threading.Lock()
        self._train_now = False
        self._abandon_round = False
        self.state = "idle"
        self.paused_reason = ""
        self.last_error = ""  # taking in bags (cleared by the next intake that works)
        self.round_error = ""  # a round that failed (cleared by the next round with a decision)
        self.progress = 0
        self.rejected: dict[str, str] = dict(self.loop.store.rejected)
        self._last_rejection = -float("inf")
        self.last_round: dict[str, str] = {}
        self.serving = ""
        #: A deploy perception loaded while no camera frames came: (why, roll back on failure,
        #: since when); confirmed by the periodic check once a frame is processed.
        self._awaiting_outputs: tuple[str, bool, float] | None = None
        self.create_service(Trigger, "~/train_now", self._on_train_now)
        self.create_service(Trigger, "~/rollback", self._on_rollback)
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics, clock=WALL_CLOCK)
        self.create_timer(p.check_period_s, self._wake.set, clock=WALL_CLOCK)
        self._thread = threading.Thread(target=self._work, name="rounds", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"training on bags from {self.loop.bags_dir} in {self.loop.work_dir}, deploying to "
            f"{self.loop.deployed} (perception node: {p.perception_node or 'none'}; "
            f"{p.cpu_threads} CPU threads, nice +{p.nice})")

    # -- services ---------------------------------------------------------------------------
    def _on_train_now(self, _request: Trigger.Request, response: Trigger.Response
                      ) -> Trigger.Response:
        reason = (f"busy: {self.state}" if self.state.startswith(("training", "deploying"))
                  else self.loop.blocker())
        if reason:
            response.success, response.message = False, reason
            return response
        self._train_now = True
        self._wake.set()
        response.success, response.message = True, "round requested; see /diagnostics"
        return response

    def _on_rollback(self, _request: Trigger.Request, response: Trigger.Response
                     ) -> Trigger.Response:
        try:
            entry = self.deployment.rollback()
        except DeploymentError as error:
            response.success, response.message = False, str(error)
            return response
        # A round in progress started from the model just rolled back: it is dropped.
        self._abandon_round = self.state.startswith("training")
        self.get_logger().warning(f"rolled back to {entry.name} on request")
        threading.Thread(target=self._serve, args=(f"rollback to {entry.name}", False),
                         daemon=True).start()
        response.success = True
        response.message = f"rolled back to {entry.name}; perception reload under way"
        return response

    # -- the round thread -------------------------------------------------------------------
    def _work(self) -> None:
        resume = (self.loop.next_round() / STATE_FILE).is_file()
        self._wake.set()
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._check_deployed_file()
                self._keep_perception_on_deployed()
                self._take_in_bags()
                self.last_error = ""
                forced, self._train_now = self._train_now, False
                due = 0 < self.params.min_new_bags <= self.loop.store.new_training_bags()
                if forced or due or resume or self.round_error:
                    resume = False
                    self._round()
            except Exception as error:  # keep the node alive; the reason goes to /diagnostics
                message = f"{type(error).__name__}: {error}"
                if self.state.startswith("training"):
                    self.round_error = message  # retried at the next check
                else:
                    self.last_error = message
                self.get_logger().error(message, throttle_duration_sec=WARN_PERIOD_S)
            self.state = "idle"

    def _check_deployed_file(self) -> None:
        """Every damage found and every repair is logged (the file is only re-read after it
        changed on disk)."""
        repaired = self.loop.repair_deployed()
        if repaired:
            self.get_logger().warning(repaired)
            self.serving = repaired

    def _keep_perception_on_deployed(self) -> None:
        """Move a perception node that reports another model (e.g. it was restarted with its
        YAML's checkpoint) onto the deployed file; confirm a deploy that was waiting for
        frames once perception processes one (or treat it as failed when perception reports an
        error meanwhile)."""
        if self.link and self.loop.deployed.is_file() and self.link.serves(
                self.loop.deployed) is False:
            self._serve("perception was on another model", roll_back_on_failure=False,
                        reload=False)
            return
        with self._serve_lock:
            pending = self._awaiting_outputs
            status = self.link.fresh_status() if self.link and pending else None
            if pending is None or status is None:
                return
            why, roll_back, since = pending
            failed = status.level >= level_value(DiagnosticStatus.ERROR)
            if not failed and self.link.last_processing <= since:
                return  # still no frame processed with the deploy
            self._awaiting_outputs = None
            if not failed:
                self.serving = f"{why}; perception confirmed"
                self.get_logger().info(f"{self.serving} (outputs flowing)")
                return
        self._serve(why, roll_back)

    def _take_in_bags(self) -> None:
        self.state = "taking in bags"
        report = self.loop.take_in_bags()
        for name, reason in report.rejected.items():
            self.rejected[name] = reason
            self._last_rejection = time.monotonic()
            self.get_logger().warning(f"bag {name} rejected: {reason}")
        if report.train or report.heldout:
            self.get_logger().info(f"took in {len(report.train)} training and "
                                   f"{len(report.heldout)} held-out bag(s)")

    def _round(self) -> None:
        reason = self.loop.blocker()
        folder = self.loop.next_round()
        resumed = (folder / STATE_FILE).is_file()
        if reason and not resumed:
            self.get_logger().info(f"no round: {reason}", throttle_duration_sec=WARN_PERIOD_S)
            return
        self.get_logger().info(f"{folder.name}: {'resuming' if resumed else 'starting'}")
        self.state, self.progress, self._abandon_round = f"training {folder.name}", 0, False
        result = self.loop.run_round(self._should_stop)
        if result.stopped:
            if self._abandon_round:
                shutil.rmtree(folder, ignore_errors=True)
            what = "abandoned after a rollback" if self._abandon_round else "resumes at next start"
            message = f"{folder.name}: stopped at step {result.steps}; {what}"
            if self.context.ok():
                self.get_logger().info(message)
            else:  # shutting down: rosout is gone, the console is not
                print(f"[trainer] {message}", file=sys.stderr, flush=True)
            return
        self.round_error = ""
        self._report(folder.name, result)
        if result.deployed_entry is not None and result.decision.passed:
            self.state = "deploying"
            self._serve(f"{folder.name} deployed", True)

    def _should_stop(self) -> bool:
        """Polled every training step: True to stop; waits while perception is too slow."""
        self.progress += 1
        bound = self.params.max_perception_latency_ms
        while not (self._stop.is_set() or self._abandon_round):
            latency = self.link.latency_ms() if self.link and bound > 0 else None
            if latency is None or latency <= bound:
                self.paused_reason = ""
                return False
            self.paused_reason = f"perception latency {latency:.0f} ms > {bound:.0f} ms"
            self._stop.wait(0.5)
        return True

    def _report(self, name: str, result: RoundResult) -> None:
        decision = result.decision
        verdict = "deployed" if decision.passed else "refused"
        self.last_round = {"last_round": name, "last_decision": verdict,
                           "last_scores": decision.summary,
                           "last_refusal": "; ".join(decision.failures),
                           "last_train_s": f"{result.train_seconds:.0f}",
                           "last_depth": result.depth.describe()}
        log = self.get_logger().info if decision.passed else self.get_logger().warning
        log(f"{name}: {result.steps} steps in {result.train_seconds:.0f} s; {decision.summary}; "
            f"{verdict}{': ' + '; '.join(decision.failures) if decision.failures else ''}")

    # -- serving the deployed model ---------------------------------------------------------
    def _serve(self, why: str, roll_back_on_failure: bool, reload: bool = True) -> None:
        """Get the perception node onto the deployed file (``reload``: even if it already is, to
        read the new content). When perception cannot serve it, a deployed file damaged since
        it was deployed is restored from the history, else (``roll_back_on_failure``) the
        previous model is rolled back to."""
        if self.link is None:
            self.serving = f"{why}; no perception node to reload"
            return
        with self._serve_lock:
            self._awaiting_outputs = None
            problem = self._reload_and_confirm(reload)
            if problem is None:
                self.serving = f"{why}; perception confirmed"
            elif problem.startswith(AWAITING_OUTPUTS):
                self.serving = f"{why}; {problem}"
                self._awaiting_outputs = (why, roll_back_on_failure, time.monotonic())
            elif problem.startswith("unavailable"):
                self.serving = f"{why}; {problem}"
            else:
                self.serving = f"{why}; perception {problem}"
                self.get_logger().error(self.serving)
                repair = self._repair(roll_back_on_failure)
                if repair:
                    again = self._reload_and_confirm()
                    self.serving = f"{self.serving}; {repair}; perception {again or 'confirmed'}"
            self.get_logger().info(self.serving)

    def _repair(self, roll_back: bool) -> str:
        """Restore a damaged deployed file, or roll back; what was done ('' = nothing)."""
        try:
            entry = self.deployment.restore()
            if entry is not None:
                return f"restored the deployed file from {entry.name}"
            if roll_back:
                return f"rolled back to {self.deployment.rollback().name}"
        except (DeploymentError, OSError) as error:
            return f"could not repair: {error}"
        return ""

    def _reload_and_confirm(self, reload: bool = True) -> str | None:
        """None when perception serves the deployed file healthily, else what went wrong."""
        timeout = self.params.confirm_timeout_s
        try:
            self.link.serve(self.loop.deployed, timeout, reload)
            return self.link.confirm(self.loop.deployed, timeout)
        except PerceptionRefusedError as error:
            return f"refused it: {error}"
        except PerceptionIdleError as error:
            return f"{AWAITING_OUTPUTS} ({error}; confirmed once a frame is processed)"
        except PerceptionUnavailableError as error:
            return (f"unavailable: {error} (it is moved onto the deployed file once it reports on "
                    "/diagnostics)")

    # -- lifecycle and diagnostics ----------------------------------------------------------
    def finish(self) -> None:
        """Stop the round thread; a round in training saves its state to resume later."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=120)

    def _publish_diagnostics(self) -> None:
        store = self.loop.store
        error = self.round_error or self.last_error
        rejected = dict(self.rejected)  # the round thread adds to it
        recent_rejection = time.monotonic() - self._last_rejection < REJECTION_WARN_S
        level = (DiagnosticStatus.ERROR if error else
                 DiagnosticStatus.WARN if self.paused_reason or recent_rejection else
                 DiagnosticStatus.OK)
        message = (error or self.paused_reason or
                   (f"bag rejected: {list(rejected)[-1]}" if recent_rejection else self.state))
        values = {
            "state": self.state, "paused_reason": self.paused_reason,
            "round_steps_this_run": self.progress, "round_steps": self.params.steps,
            "training_bags": len(store.train_bags()), "heldout_bags": len(store.heldout_bags()),
            "new_training_bags": store.new_training_bags(), "rejected_bags": len(rejected),
            "last_rejected": "; ".join(f"{n}: {r}" for n, r in list(rejected.items())[-3:]),
            "deployed": self.loop.deployed, "deployed_history": len(self.deployment.history()),
            "serving": self.serving, "round_error": self.round_error,
            "last_error": self.last_error, **self.last_round}
        publish_status(self, self.diagnostics, "trainer", level, message, values)
