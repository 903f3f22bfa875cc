"""``perception`` node: dense FlowFeat features (and optional depth / segmentation) from cameras.

Subscribes ``image`` (and/or ``image/compressed``) and ``camera_info``; publishes
``flowfeat/features`` (32FC<n>), ``flowfeat/features/pca`` (rgb8), ``flowfeat/depth`` (32FC1
metres) or ``flowfeat/depth/relative`` (unitless), ``flowfeat/depth/colored``,
``flowfeat/points`` (PointCloud2), ``flowfeat/segmentation`` (mono8/16UC1),
``flowfeat/segmentation/overlay``, ``flowfeat/camera_info`` and ``/diagnostics``; every output
keeps the input header. Callbacks only keep the newest frame; one worker thread runs the model
on it, so the output rate is the model's and stale frames are dropped (and counted). Outputs
without subscribers are not computed. Parameters: config/perception.yaml, docs/perception.md.
Run (entry point flowfeat_ros/perception_node.py):
``perception_node --ros-args --params-file config/perception.yaml -r image:=/camera/image_raw``
"""

from __future__ import annotations

import time
from concurrent.futures import TimeoutError as FutureTimeout

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from flowfeat_core.inference.auto_backend import BackendStatus
from flowfeat_core.inference.device import cpu_inference_threads
from flowfeat_ros.diagnostics import WALL_CLOCK, publish_status
from flowfeat_ros.parameter_declarations import declare_settings
from flowfeat_ros.perception.camera_io import CameraIO
from flowfeat_ros.perception.frame_mailbox import FrameMailbox
from flowfeat_ros.perception.input_health import starvation_reason
from flowfeat_ros.perception.parameters import (
    RUNTIME_PARAMETERS,
    PerceptionSettings,
    check_against_model,
    settings_from_values,
    validate_settings,
)
from flowfeat_ros.perception.pipeline_stats import PipelineStats
from flowfeat_ros.perception.probe_outputs import available_outputs
from flowfeat_ros.perception.problems import PROCESSING_ERROR, ProblemReporter
from flowfeat_ros.perception.processing import FrameProcessor
from flowfeat_ros.perception.runtime import (
    Runtime,
    RuntimeLoadError,
    RuntimeManager,
    build_runtime,
    file_times,
)
from flowfeat_ros.perception.status_keys import (
    CHECKPOINT,
    LAST_LOAD_ERROR,
    RECEIVED_FRAMES,
    STATUS_KIND,
)
from flowfeat_ros.perception.tracking import CameraTracking
from flowfeat_ros.perception.worker import InferenceWorker

RELOAD_TIMEOUT_S = 300.0
IDLE_WAIT_S = 0.2
#: Frames failing this long with none succeeding turn /diagnostics to ERROR: the node publishes
#: nothing, which a throttled log line alone does not make visible to a monitor.
FAILING_ERROR_S = 3.0


class PerceptionNode(Node):
    """See the module docstring."""

    def __init__(self) -> None:
        """Declare and validate parameters, load the model, wire topics, start the worker."""
        super().__init__("perception")
        self.settings = declare_settings(self, PerceptionSettings)
        reason = validate_settings(self.settings)
        if reason:
            raise ValueError(reason)
        torch.set_num_threads(cpu_inference_threads(self.settings.cpu_threads))
        runtime = build_runtime(self.settings)
        reason = check_against_model(self.settings, runtime.predictor.fdim)
        if reason:
            raise ValueError(reason)
        self.manager = RuntimeManager(runtime, self._on_load_failure, self._on_swap)
        self._seen_file_times = dict(runtime.file_times)
        self.mailbox = FrameMailbox()
        self.stats = PipelineStats()
        self.problems = ProblemReporter(self.get_logger(), self.settings.warn_period_s)
        names = self.settings.cameras or ("",)
        self.cameras = {name: CameraIO(self, name, self.settings, self.mailbox, self.problems)
                        for name in names}
        self.tracking = {name: CameraTracking(self, f"{name}/" if name else "", camera.label,
                                              self.settings, self.problems)
                         for name, camera in self.cameras.items()}
        self._advertise(runtime)
        self.processor = FrameProcessor(self.cameras, self.tracking, self.stats, self.problems,
                                        self._clock_seconds)
        self.add_on_set_parameters_callback(self._validate_change)
        self.add_post_set_parameters_callback(self._apply_change)
        # Served by the node's single-threaded executor: camera callbacks pause while a reload
        # loads the model (the worker keeps running); a checkpoint parameter change does not block.
        self.create_service(Trigger, "~/reload", self._on_reload)
        self.create_service(Trigger, "~/track_clear", self._on_track_clear)
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.settings.diagnostics_period_s, self._publish_diagnostics,
                          clock=WALL_CLOCK)
        self.create_timer(self.settings.watch_period_s, self._watch_files, clock=WALL_CLOCK)
        self._last_start = -float("inf")
        self._failing_since: float | None = None
        self._last_failure = ""
        self._logged_backend: BackendStatus | None = None
        self._report_probe_binding(runtime)
        self.worker = InferenceWorker(self._work_step, self._on_worker_error)
        self.worker.start()
        self.get_logger().info(
            f"running {runtime.description} on {runtime.predictor.device} "
            f"({runtime.predictor.precision}, {torch.get_num_threads()} CPU threads) for cameras "
            f"{list(names)}")

    # -- parameters -------------------------------------------------------------------------
    def _validate_change(self, params: list[Parameter]) -> SetParametersResult:
        values = {**self.settings.__dict__, **{p.name: p.value for p in params}}
        candidate = settings_from_values(values)
        running = self.manager.current
        same_model = candidate.model_key() == running.settings.model_key()
        reason = validate_settings(candidate, running.predictor.fdim if same_model else None)
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _apply_change(self, params: list[Parameter]) -> None:
        values = {**self.settings.__dict__, **{p.name: p.value for p in params}}
        self.settings = settings_from_values(values)
        if self.settings.runtime_key() != self.manager.requested_key:
            self.get_logger().info(f"loading {self.settings.checkpoint} in the background")
            self.manager.request(self.settings)

    def _on_load_failure(self, reason: str, running: PerceptionSettings) -> None:
        self.get_logger().error(f"load failed, keeping {self.manager.current.description}: "
                                f"{reason}")
        revert = [Parameter(name, value=getattr(running, name)) for name in RUNTIME_PARAMETERS
                  if getattr(running, name) != getattr(self.settings, name)]
        if revert:
            self.set_parameters(revert)

    def _advertise(self, runtime: Runtime) -> None:
        outputs = available_outputs(runtime)
        for camera in self.cameras.values():
            camera.advertise(outputs)

    def _on_swap(self, runtime: Runtime) -> None:
        self._advertise(runtime)
        self._seen_file_times = dict(runtime.file_times)
        self.get_logger().info(f"now running {runtime.description} on {runtime.predictor.device}")
        self._report_probe_binding(runtime)

    def _report_probe_binding(self, runtime: Runtime) -> None:
        for reason in runtime.stopped_probes.values():
            self.get_logger().warning(reason)
        for task in runtime.unverified_probes:
            self.get_logger().warning(f"the {task} probe records no model fingerprint (saved "
                                      "before they were recorded): it cannot be checked against "
                                      "the running model; retrain it with flowfeat_probe")

    # -- reload -----------------------------------------------------------------------------
    def _on_reload(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        start = time.monotonic()
        future = self.manager.request(self.settings, force=True)
        try:
            runtime = future.result(timeout=RELOAD_TIMEOUT_S)
        except RuntimeLoadError as error:
            response.success, response.message = False, f"reload failed: {error}"
        except FutureTimeout:
            response.success, response.message = False, "reload still running after timeout"
        else:
            response.success = True
            response.message = (f"reloaded {runtime.description} in "
                                f"{time.monotonic() - start:.2f} s")
        return response

    def _on_track_clear(self, request: Trigger.Request,
                        response: Trigger.Response) -> Trigger.Response:
        cleared = sum(tracking.clear() for tracking in self.tracking.values())
        response.success, response.message = True, f"cleared {cleared} tracked objects"
        return response

    def _watch_files(self) -> None:
        if not self.settings.watch_checkpoint:
            return
        times = file_times(self.settings)
        if times == self._seen_file_times:
            return
        self._seen_file_times = times
        self.get_logger().info(f"model files changed on disk, reloading {sorted(times)}")
        self.manager.request(self.settings, force=True)

    # -- worker -----------------------------------------------------------------------------
    def _clock_seconds(self) -> float | None:
        """The node clock in seconds; None while it reads 0 (use_sim_time before /clock)."""
        nanoseconds = self.get_clock().now().nanoseconds
        return nanoseconds * 1e-9 if nanoseconds else None

    def _work_step(self) -> None:
        """Process the newest frames once (waits briefly when there are none)."""
        rate = self.settings.max_rate_hz  # read each time: a new rate applies at once
        wait = self._last_start + 1.0 / rate - time.monotonic() if rate > 0 else 0.0
        if wait > 0:
            time.sleep(min(wait, IDLE_WAIT_S))
            return
        pending = self.mailbox.take_all(IDLE_WAIT_S)
        if not pending:
            return
        self._last_start = time.monotonic()
        self.processor.process(pending, self.manager.current, self.settings)
        self._failing_since = None

    def _on_worker_error(self, error: Exception) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self._last_failure = f"{type(error).__name__}: {error}"
        if self.context.ok():  # after shutdown the publishers are gone: nothing to report
            self.problems.error(PROCESSING_ERROR, "worker", f"frame processing failed "
                                f"({type(error).__name__}): {error}")

    def finish(self) -> None:
        """Stop the worker and the loader threads (a model load in progress ends first)."""
        self.worker.stop(timeout=0)
        self.mailbox.wake()
        self.worker.stop(timeout=10)
        self.manager.shutdown()

    # -- diagnostics ------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        runtime = self.manager.current
        values: dict[str, object] = dict(self.stats.summary())
        values["dropped_frames"] = self.mailbox.total_dropped()
        values[RECEIVED_FRAMES] = sum(self.mailbox.received.values())
        values["device"] = str(runtime.predictor.device)
        backend = runtime.predictor.backend_status()
        values["backend"] = backend.serving
        values["precision"] = backend.precision
        values["backend_setting"] = runtime.predictor.backend
        values["backend_status"] = backend.detail
        self._log_backend_change(backend)
        values["cpu_threads"] = torch.get_num_threads()
        values["model"] = runtime.description
        values[CHECKPOINT] = runtime.settings.checkpoint
        values[LAST_LOAD_ERROR] = self.manager.last_error
        values.update(self.problems.diagnostic_values())
        for name, tracking in self.tracking.items():
            values.update(tracking.diagnostic_values(f"{name}_" if name else ""))
        values["worker_errors"] = self.worker.errors
        values["worker_restarts"] = self.worker.restarts
        values["model_fingerprint"] = runtime.fingerprint
        if runtime.unverified_probes:
            values["probes_unverified"] = ", ".join(runtime.unverified_probes)
        problems = self._input_problems(values) + list(runtime.stopped_probes.values())
        if self.manager.last_error:
            problems.insert(0, f"load failed, old model kept: {self.manager.last_error}")
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        failing_since = self._failing_since
        if failing_since is not None and time.monotonic() - failing_since >= FAILING_ERROR_S:
            level = DiagnosticStatus.ERROR
            problems.insert(0, f"every frame has failed for {time.monotonic() - failing_since:.0f}"
                               f" s, nothing is published: {self._last_failure}")
        if self.worker.ensure_running() or self.worker.recently_restarted():
            level = DiagnosticStatus.ERROR
            problems.insert(0, f"inference worker ended ({self.worker.last_exit}) and was "
                               f"restarted ({self.worker.restarts} restarts)")
        message = "; ".join(problems) or f"running {runtime.description}"
        publish_status(self, self.diagnostics, STATUS_KIND, level, message, values,
                       hardware_id=str(runtime.predictor.device))

    def _log_backend_change(self, backend: BackendStatus) -> None:
        if backend != self._logged_backend:
            self._logged_backend = backend
            self.get_logger().info(f"backend {backend.serving} {backend.precision}: "
                                   f"{backend.detail}")

    def _input_problems(self, values: dict[str, object]) -> list[str]:
        """Starved cameras (frames lost in transport), adding the loss counts to ``values``."""
        problems = []
        values["input_lost_frames"] = sum(c.loss.lost_total for c in self.cameras.values())
        values["input_publishers"] = sum(c.publisher_count() for c in self.cameras.values())
        if not all(c.loss_detection for c in self.cameras.values()):
            values["input_loss_detection"] = "not supported by this middleware"
        for camera in self.cameras.values():
            received, lost = camera.loss.recent()
            reason = starvation_reason(camera.label, received, lost)
            if reason:
                problems.append(reason)
        return problems

