"""Unit tests of the perception building blocks: newest-frame mailbox, settings validation and
output rendering (no ROS graph needed)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from flowfeat_core.inference.pca import FeaturePCA
from flowfeat_ros.perception import rendering
from flowfeat_ros.perception.frame_mailbox import REORDER_WINDOW_S, Arrival, FrameMailbox
from flowfeat_ros.perception.parameters import settings_from_values, validate_settings
from flowfeat_ros.perception.tracking import TRACK_OUTPUTS, CameraTracking
from flowfeat_ros.perception.worker import InferenceWorker


def stamped(seconds: float, frame_id: str = "cam") -> Image:
    msg = Image()
    msg.header.stamp.sec = int(seconds)
    msg.header.stamp.nanosec = round((seconds - int(seconds)) * 1e9)
    msg.header.frame_id = frame_id
    return msg


def test_mailbox_keeps_only_the_newest_frame_per_camera_and_counts_drops():
    mailbox = FrameMailbox()
    for index in range(5):
        mailbox.put("a", stamped(index))
    only = stamped(1, "b")
    mailbox.put("b", only)
    frames = {f.camera: f.msg for f in mailbox.take_all(0.0)}
    assert frames["a"].header.stamp.sec == 4 and frames["b"] is only
    assert mailbox.dropped == {"a": 4} and mailbox.total_dropped() == 4
    assert mailbox.take_all(0.0) == []


def test_mailbox_drops_frames_stamped_shortly_before_the_newest_seen():
    mailbox = FrameMailbox()
    mailbox.put("a", stamped(10.0))
    assert [f.msg.header.stamp.sec for f in mailbox.take_all(0.0)] == [10]
    assert mailbox.put("a", stamped(9.7)) is Arrival.LATE  # after a newer frame was processed
    assert mailbox.take_all(0.0) == []
    mailbox.put("a", stamped(10.0))  # same stamp again (e.g. a re-sent frame) is kept
    mailbox.put("a", stamped(10.2))
    mailbox.put("a", stamped(10.1))  # older than the one waiting: the waiting one stays
    assert [f.msg.header.stamp.nanosec for f in mailbox.take_all(0.0)] == [200_000_000]
    assert mailbox.received == {"a": 5} and mailbox.dropped == {"a": 3}


def test_one_future_stamp_cannot_block_the_stream():
    """A frame stamped far ahead (bogus, or a clock reset back) used to make every later frame
    'late' until real time passed its stamp: forever, for a far-future stamp."""
    mailbox = FrameMailbox()
    mailbox.put("a", stamped(100.0))
    assert mailbox.put("a", stamped(1.0e9)) is Arrival.ACCEPTED
    mailbox.take_all(0.0)
    assert mailbox.put("a", stamped(100.1)) is Arrival.STAMP_JUMP  # beyond REORDER_WINDOW_S
    assert mailbox.put("a", stamped(100.2)) is Arrival.ACCEPTED
    assert [f.msg.header.stamp.nanosec for f in mailbox.take_all(0.0)] == [200_000_000]
    assert REORDER_WINDOW_S <= 1.0


def test_mailbox_wakes_a_waiting_worker():
    mailbox = FrameMailbox()
    frame = stamped(1)
    threading.Timer(0.1, mailbox.put, ("a", frame)).start()
    start = time.monotonic()
    frames = mailbox.take_all(5.0)
    assert [f.msg for f in frames] == [frame] and time.monotonic() - start < 2.0


@pytest.mark.parametrize(("change", "reason"), [
    ({"precision": "fp8"}, "precision must be one of"),
    ({"input_transport": "udp"}, "input_transport must be one of"),
    ({"depth_min": 5.0, "depth_max": 1.0}, "depth_max must be greater"),
    ({"cameras": ["a", "a"]}, "distinct"),
    ({"checkpoint": "no_such_weights"}, "is none of: 'default'"),
    ({"pca_basis": "/nonexistent.safetensors"}, "pca_basis"),
])
def test_invalid_settings_give_a_reason(change, reason):
    assert reason in validate_settings(settings_from_values(change))


def test_default_settings_are_valid():
    assert validate_settings(settings_from_values({})) is None


def test_output_size_rules():
    assert rendering.output_size(0, 0, (480, 640), (240, 320)) == (240, 320)
    assert rendering.output_size(160, 0, (480, 640), (240, 320)) == (120, 160)
    assert rendering.output_size(0, 60, (480, 640), (240, 320)) == (60, 80)
    assert rendering.output_size(50, 70, (480, 640), (240, 320)) == (70, 50)


def test_projection_is_fixed_after_fitting():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(1, 16, 12, 10, generator=generator)
    projection = FeaturePCA.fit(first, 4)
    basis = projection.basis.clone()
    later = torch.randn(1, 16, 12, 10, generator=generator) * 3 + 1  # other statistics
    colours = projection.colorize(later)
    reduced = projection.project(later, 4)
    assert reduced.shape == (1, 4, 12, 10)
    # Using the projection on other frames never refits it: the basis and the outputs for the
    # first frame are what they were right after fitting.
    assert torch.equal(projection.basis, basis)
    refit_first = FeaturePCA.fit(first, 4)
    np.testing.assert_array_equal(projection.colorize(first), refit_first.colorize(first))
    # It is the fitted basis that maps the later frame: a projection refitted on it differs.
    expected = torch.einsum("bchw,ck->bkhw", later - projection.mean.view(1, -1, 1, 1), basis[:, :4])
    torch.testing.assert_close(reduced, expected, rtol=1e-5, atol=1e-5)
    refit = FeaturePCA.fit(later, 4)
    assert not np.array_equal(colours, refit.colorize(later))


def test_depth_colours_and_class_ids():
    depth = np.linspace(1, 10, 200, dtype=np.float32).reshape(10, 20)
    colours = rendering.colorize_depth(depth, 1.0, 10.0)
    assert colours.shape == (10, 20, 3) and colours.dtype == np.uint8
    assert colours[0, 0, 0] > colours[0, 0, 2] and colours[-1, -1, 2] > colours[-1, -1, 0]
    logits = torch.zeros(1, 300, 4, 4)
    logits[0, 299] = 1.0
    ids = rendering.class_ids(logits, (8, 8))
    assert ids.dtype == np.uint16 and ids.shape == (1, 8, 8) and (ids == 299).all()
    assert rendering.class_ids(logits[:, :3], (4, 4)).dtype == np.uint8
    colors = np.array([[255, 0, 0], [0, 255, 0]], dtype=np.uint8)
    overlay = rendering.overlay_classes(np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), np.uint8),
                                        colors, 0.5)
    assert (overlay[..., 1] == 128).all() and (overlay[..., 0] == 0).all()


def test_worker_survives_errors_even_when_reporting_them_fails():
    """rclpy's 'Logger severity cannot be changed' once raised inside the error handler and ended
    the worker thread while the node looked alive."""
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        time.sleep(0.001)
        raise RuntimeError("model failed on this frame")

    def report(_error: Exception) -> None:
        raise ValueError("Logger severity cannot be changed between calls.")

    worker = InferenceWorker(step, report)
    worker.start()
    deadline = time.monotonic() + 5
    while worker.errors < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.errors >= 20 and not worker.ensure_running() and worker.restarts == 0
    worker.stop(timeout=2)


def test_a_worker_that_ends_anyway_is_restarted_and_reported():
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit("a BaseException ends the thread")
        time.sleep(0.005)

    worker = InferenceWorker(step, lambda error: None)
    worker.start()
    deadline = time.monotonic() + 5
    while not worker.ensure_running():
        assert time.monotonic() < deadline, "the worker never ended"
        time.sleep(0.01)
    assert worker.restarts == 1 and worker.recently_restarted()
    assert worker.last_exit.startswith("SystemExit")
    while len(calls) < 5:
        assert time.monotonic() < deadline, "the restarted worker does not run"
        time.sleep(0.01)
    worker.stop(timeout=2)


def test_the_status_keys_the_trainer_reads_are_the_ones_perception_writes():
    """perception_link used to parse hand-typed key strings: a renamed key broke the loop
    silently. Both sides now use flowfeat_ros.perception.status_keys."""
    from flowfeat_ros.perception.pipeline_stats import PipelineStats
    from flowfeat_ros.perception.status_keys import PROCESSED_FRAMES, STAMP_LATENCY_MEDIAN

    stats = PipelineStats()
    stats.record_frame(0.050, 0.010)
    summary = stats.summary()
    assert summary[PROCESSED_FRAMES] == 1
    assert summary[STAMP_LATENCY_MEDIAN] == 50.0
    stats.record_frame(None, 0.010)  # no running clock: no stamp latency recorded
    assert stats.summary()[STAMP_LATENCY_MEDIAN] == 50.0 and stats.summary()[PROCESSED_FRAMES] == 2


def _settings(**changes: object):
    return settings_from_values({"input_width": 64, "input_height": 48, **changes})


def test_runtime_manager_swaps_good_loads_and_keeps_the_model_on_a_bad_one(tmp_path):
    """RuntimeManager without a node: a failed load reports and leaves the current runtime, a
    good one is swapped in, and the probe is reused when only other settings change."""
    from flowfeat_core.probes.heads import Probe, ProbeSpec
    from flowfeat_core.probes.io import save_probe
    from flowfeat_ros.perception.runtime import RuntimeLoadError, RuntimeManager, build_runtime

    initial = build_runtime(_settings())
    failures, swaps = [], []
    manager = RuntimeManager(initial, lambda reason, _: failures.append(reason), swaps.append)
    try:
        broken = tmp_path / "broken.safetensors"
        broken.write_bytes(b"not a checkpoint")
        with pytest.raises(RuntimeLoadError):
            manager.request(_settings(checkpoint=str(broken))).result(timeout=60)
        assert manager.current is initial and "broken.safetensors" in failures[0]
        assert manager.last_error == failures[0] and swaps == []
        probe = save_probe(tmp_path / "depth.safetensors", Probe(ProbeSpec(
            task="depth", head="linear", dense_channels=128, encoder_channels=0)))
        with_probe = manager.request(_settings(depth_probe=str(probe))).result(timeout=60)
        assert manager.current is with_probe and swaps == [with_probe]
        assert with_probe.predictor is initial.predictor  # same model settings: not reloaded
        assert manager.last_error == ""
    finally:
        manager.shutdown()


def test_probe_outputs_advertised_and_computed_only_for_what_a_probe_fills(tmp_path):
    from flowfeat_core.probes.heads import Probe, ProbeSpec
    from flowfeat_core.probes.io import save_probe
    from flowfeat_ros.perception.probe_outputs import available_outputs, run_probes
    from flowfeat_ros.perception.runtime import build_runtime

    bare = build_runtime(_settings(depth_probe=""))
    assert available_outputs(bare) == {"features", "pca", "camera_info", *TRACK_OUTPUTS}
    shipped = build_runtime(_settings(), bare)  # the default model with its shipped probe
    assert available_outputs(shipped) == {"features", "pca", "camera_info", "depth_relative",
                                          "depth_colored", *TRACK_OUTPUTS}
    assert not shipped.stopped_probes and not shipped.depth_probe.metric
    relative = save_probe(tmp_path / "relative.safetensors", Probe(ProbeSpec(
        task="depth", head="linear", dense_channels=128, encoder_channels=0, metric=False)))
    runtime = build_runtime(_settings(depth_probe=str(relative)), bare)
    assert available_outputs(runtime) == {"features", "pca", "camera_info", "depth_relative",
                                          "depth_colored", *TRACK_OUTPUTS}
    features = torch.randn(1, 128, 12, 16)
    encoder = torch.randn(1, 320, 2, 2)
    assert run_probes(frozenset({"pca"}), features, encoder, runtime, (24, 32)).depth is None
    maps = run_probes(frozenset({"depth_relative"}), features, encoder, runtime, (24, 32))
    assert maps.depth.shape == (24, 32) and not maps.metric and maps.class_ids is None
    with_context = save_probe(tmp_path / "context.safetensors", Probe(ProbeSpec(
        task="depth", head="mlp", dense_channels=128, encoder_channels=0, metric=False,
        context=True)))
    runtime = build_runtime(_settings(depth_probe=str(with_context)), bare)
    maps = run_probes(frozenset({"depth_relative"}), features, encoder, runtime, (24, 32))
    assert maps.depth.shape == (24, 32) and np.isfinite(maps.depth).all() and not maps.metric


def test_the_default_probe_is_the_one_attached_to_the_checkpoint_else_the_shipped_one(tmp_path):
    """What the on-robot loop deploys (a model with its depth probe in one file) is served by
    ``depth_probe: default``; without an attachment, 'default' is the shipped probe (stopped
    here: it belongs to the default model); an explicit probe file wins over an attachment."""
    from flowfeat_core.hub.checkpoint import save_checkpoint
    from flowfeat_core.models.fingerprint import model_fingerprint
    from flowfeat_core.models.flowfeat import FlowFeat
    from flowfeat_core.probes.binding import MODEL_DIGEST
    from flowfeat_core.probes.heads import Probe, ProbeSpec
    from flowfeat_core.probes.io import SHIPPED_PROBE, attach_probes, probe_file
    from flowfeat_ros.perception.probe_outputs import available_outputs
    from flowfeat_ros.perception.runtime import build_runtime

    model = FlowFeat.embedded_default().untrained_twin(seed=4)
    plain = save_checkpoint(tmp_path / "model.safetensors", model)
    probe = Probe(ProbeSpec("depth", "linear", 128, 0, metric=True))
    probe.model_info = {MODEL_DIGEST: model_fingerprint(model)}
    bundle = attach_probes(plain, {"depth": probe}, tmp_path / "bundle.safetensors")

    runtime = build_runtime(_settings(checkpoint=str(bundle)))
    assert runtime.settings.depth_probe == SHIPPED_PROBE and runtime.attached_tasks == ("depth",)
    assert runtime.depth_probe.metric and not runtime.stopped_probes
    assert {"depth", "points"} <= available_outputs(runtime)
    assert "depth=attached to the checkpoint" in runtime.description
    without = build_runtime(_settings(checkpoint=str(plain)))
    assert without.depth_probe is None and "not on the running model" in without.stopped_probes["depth"]
    explicit = build_runtime(_settings(checkpoint=str(bundle),
                                       depth_probe=str(probe_file(SHIPPED_PROBE))))
    assert explicit.attached_tasks == () and "depth" in explicit.stopped_probes


def test_frame_processor_publishes_what_is_subscribed_and_refuses_bad_frames():
    """FrameProcessor in this process on a real rclpy node (no node subprocess): a good frame
    gives the subscribed outputs with its header; a frame whose camera_info is broken is
    skipped and counted; outputs nobody subscribes to are not computed."""
    from ros_peer import isolated_test_node
    from sensor_msgs.msg import CameraInfo

    from flowfeat_ros.image_conversion import rgb8_to_msg
    from flowfeat_ros.perception.camera_io import CameraIO
    from flowfeat_ros.perception.frame_mailbox import PendingFrame
    from flowfeat_ros.perception.pipeline_stats import PipelineStats
    from flowfeat_ros.perception.probe_outputs import available_outputs
    from flowfeat_ros.perception.problems import ProblemReporter
    from flowfeat_ros.perception.processing import FrameProcessor
    from flowfeat_ros.perception.runtime import build_runtime
    from flowfeat_ros.playback.frame_source import pinhole_camera_info

    class Logger:
        """The problems' sink: keeps the lines it would log."""

        def __init__(self) -> None:
            self.lines: list[str] = []

        def warning(self, line: str) -> None:
            self.lines.append(line)

        error = warning

    settings = _settings()
    runtime = build_runtime(settings)
    logger = Logger()
    nodes = isolated_test_node("processor_unit")
    node = next(nodes)
    try:
        problems = ProblemReporter(logger, 0.0)
        camera = CameraIO(node, "", settings, FrameMailbox(), problems)
        camera.advertise(available_outputs(runtime))
        received = []
        node.create_subscription(Image, "flowfeat/features/pca", received.append, 10)
        stats = PipelineStats()
        tracking = {"": CameraTracking(node, "", camera.label, settings, problems)}
        processor = FrameProcessor({"": camera}, tracking, stats, problems, lambda: 1000.5)
        rgb = np.full((48, 64, 3), 120, np.uint8)
        msg = rgb8_to_msg(rgb, Header(stamp=Time(sec=1000), frame_id="cam"))
        camera.latest_info = pinhole_camera_info(64, 48, 60.0)
        assert camera.wanted() == {"pca"}
        processor.process([PendingFrame("", msg, time.monotonic())], runtime, settings)
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            node.test_executor.spin_once(timeout_sec=0.05)
        assert len(received) == 1 and received[0].header.frame_id == "cam"
        assert (received[0].width, received[0].height, received[0].encoding) == (64, 48, "rgb8")
        assert stats.summary()["processed_frames"] == 1
        assert stats.summary()["latency_stamp_ms_median"] == pytest.approx(500.0)
        broken: CameraInfo = pinhole_camera_info(64, 48, 60.0)
        broken.k = [float("nan"), *broken.k[1:]]
        camera.latest_info = broken
        processor.process([PendingFrame("", msg, time.monotonic())], runtime, settings)
        assert stats.invalid == 1 and "camera_info K holds NaN or inf" in logger.lines[-1]
    finally:
        next(nodes, None)  # shuts the node and its context down


def test_camera_tracking_survives_a_frame_size_change_and_refuses_oversized_prompts():
    """CameraTracking on a real rclpy node in this process: a mask prompt is tracked; frames of
    another size drop the objects with a warning instead of failing every frame; a prompt larger
    than max_input_pixels is refused before it is copied."""
    from ros_peer import isolated_test_node
    from std_msgs.msg import Header

    from flowfeat_ros.image_conversion import mono8_to_msg
    from flowfeat_ros.perception.problems import BAD_PROMPT, TRACK_RESET, ProblemReporter

    class Logger:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warning(self, line: str) -> None:
            self.lines.append(line)

    nodes = isolated_test_node("tracking_unit")
    node = next(nodes)
    try:
        logger = Logger()
        problems = ProblemReporter(logger, 0.0)
        tracking = CameraTracking(node, "", "camera", _settings(track_stride=4,
                                                                max_input_pixels=4096), problems)
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 8:20] = 1
        tracking._on_mask(mono8_to_msg(mask, Header()))  # the subscription's callback
        tracking._on_mask(mono8_to_msg(np.ones((100, 100), np.uint8), Header()))
        assert problems.counts[BAD_PROMPT] == 1 and "exceeds max_input_pixels" in logger.lines[0]
        features = torch.randn(1, 8, 32, 32)
        wanted = frozenset({"track_mask", "track_objects"})
        messages = dict(tracking.step(Header(), features, np.zeros((32, 32, 3), np.uint8),
                                      (32, 32), wanted))
        assert set(messages) == wanted and tracking.tracker.object_ids == [1]
        assert tracking.step(Header(), torch.randn(1, 8, 48, 48), np.zeros((48, 48, 3), np.uint8),
                             (48, 48), wanted) == []
        assert problems.counts[TRACK_RESET] == 1 and not tracking.tracker.active
        assert "prompt again" in logger.lines[-1]
    finally:
        next(nodes, None)


def test_frames_that_all_fail_turn_diagnostics_to_error_and_back():
    """Every frame failing must not leave /diagnostics at OK. No input is known to cause it any
    more (a probe of another feature width did; it is refused at load now), so the perception
    node runs in this process and its worker's error callback is given the error of each failing
    frame; a real frame processed afterwards clears it."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from std_msgs.msg import Header

    from flowfeat_ros.image_conversion import rgb8_to_msg
    from flowfeat_ros.perception.node import FAILING_ERROR_S, PerceptionNode

    rclpy.init(args=["test", "--ros-args", "-p", "input_width:=64", "-p", "input_height:=48",
                     "-p", "diagnostics_period_s:=0.2"])
    node = PerceptionNode()
    try:
        statuses: list[DiagnosticStatus] = []
        node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda msg: statuses.extend(msg.status), 10)
        node.create_subscription(Image, "flowfeat/features/pca", lambda msg: None, 10)
        start = time.monotonic()
        while time.monotonic() - start < FAILING_ERROR_S + 1.0:
            node._on_worker_error(ValueError("probe expects 64 dense channels, got 128"))
            rclpy.spin_once(node, timeout_sec=0.05)
        error = [s for s in statuses if int.from_bytes(s.level, "little") == 2]
        assert error and "every frame has failed" in error[-1].message
        assert "64 dense channels" in error[-1].message
        node.mailbox.put("", rgb8_to_msg(np.full((48, 64, 3), 90, np.uint8), Header()))
        deadline = time.monotonic() + 20
        while int.from_bytes(statuses[-1].level, "little") == 2:
            assert time.monotonic() < deadline, statuses[-1].message
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.finish()
        node.destroy_node()
        rclpy.try_shutdown()
