"""End-to-end tests of the perception node (separate process) fed real vtest.avi frames by a real
rclpy peer: outputs and headers, run-time parameters, model swaps and bad inputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from test_perception_support import (
    RELIABLE,
    Camera,
    Diagnostics,
    Outputs,
    PerceptionProcess,
    base_params,
    checkpoint,
    connected_camera,
    connected_outputs,
    make_checkpoint,
    peer,
    read_frames,
    set_parameters,
    spin_for,
    spin_until,
    stream_until,
)

from flowfeat_core.hub.checkpoint import FORMAT_KEY
from flowfeat_core.hub.loading import load_model
from flowfeat_core.inference.auto_backend import fastest_backend
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.fingerprint import model_fingerprint
from flowfeat_core.probes.binding import MODEL_DIGEST
from flowfeat_core.probes.heads import Probe, ProbeSpec
from flowfeat_core.probes.io import save_probe
from flowfeat_ros.image_conversion import image_msg_to_array
from flowfeat_ros.playback.frame_source import pinhole_camera_info

pytestmark = pytest.mark.ros
NODE = "/pn/perception"
__all__ = ["checkpoint", "peer"]  # fixtures used by this module


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return read_frames(12, (320, 240))


@pytest.fixture(scope="module")
def node(checkpoint, tmp_path_factory) -> PerceptionProcess:
    log = tmp_path_factory.mktemp("logs") / "perception.log"
    process = PerceptionProcess(log, base_params(checkpoint, input_transport="both"), "/pn")
    yield process
    assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def camera(peer, node) -> Camera:
    return connected_camera(peer, node, "/pn")


@pytest.fixture(scope="module")
def outputs(peer, node) -> Outputs:
    return connected_outputs(peer, node, "/pn")


def expected_features(checkpoint: Path, rgb: np.ndarray) -> np.ndarray:
    predictor = Predictor(load_model(checkpoint), device="cpu", input_hw=(120, 160))
    return predictor.predict(rgb, as_numpy=True)[0]


def send_and_receive(peer, camera, outputs, rgb, node, topics=None, **send) -> Header:
    """Send one frame and wait until every collected topic received its output."""
    topics = topics or list(outputs.messages)
    before = {t: outputs.count(t) for t in topics}
    header = camera.send(rgb, **send)
    spin_until(peer, lambda: all(outputs.count(t) > before[t] for t in topics), 30,
               f"outputs on {topics}", node)
    return header


def test_outputs_keep_the_input_header_and_match_the_model(peer, node, camera, outputs, frames,
                                                           checkpoint):
    for index in (0, 5, 5):
        header = send_and_receive(peer, camera, outputs, frames[index], node,
                                  frame_id=f"cam{index}")
        for topic, msgs in outputs.messages.items():
            assert msgs[-1].header.frame_id == header.frame_id, topic
            assert msgs[-1].header.stamp == header.stamp, topic
    features, pca, info = (outputs.messages[t][-1] for t in outputs.messages)
    assert (features.encoding, features.width, features.height) == ("32FC128", 160, 120)
    assert features.step == 160 * 128 * 4
    np.testing.assert_allclose(image_msg_to_array(features),
                               expected_features(checkpoint, frames[5]), atol=2e-3)
    assert (pca.encoding, pca.width, pca.height) == ("rgb8", 160, 120)
    pcas = outputs.messages["flowfeat/features/pca"]
    np.testing.assert_array_equal(image_msg_to_array(pcas[-1]), image_msg_to_array(pcas[-2]))
    assert image_msg_to_array(pcas[-1]).std() > 10  # a real colouring, not a flat image
    assert (info.width, info.height) == (160, 120)
    input_fx = 160.0 / np.tan(np.radians(30.0))  # the 320x240 input's 60 degree pinhole
    assert info.k[0] == pytest.approx(input_fx / 2)


def test_runtime_parameters_valid_accepted_invalid_rejected(peer, node, camera, outputs, frames):
    results = set_parameters(peer, NODE, output_width=80, feature_channels=8)
    assert all(r.successful for r in results), results
    spin_for(peer, 0.2)
    outputs.clear()
    send_and_receive(peer, camera, outputs, frames[1], node)
    features = outputs.messages["flowfeat/features"][-1]
    assert (features.encoding, features.width, features.height) == ("32FC8", 80, 60)
    assert outputs.messages["flowfeat/camera_info"][-1].width == 80
    rejected = {
        "precision": ("fp64", "precision must be one of"),
        "feature_channels": (500, "exceeds the model's 128"),
        "checkpoint": ("/nonexistent/model.safetensors", "checkpoint not found"),
        "device": ("tpu", "device 'tpu' is not supported (use auto, cpu or cuda[:N])"),
        "input_height": (0, "input_width and input_height must be both 0"),
        "qos_depth": (3, "read-only"),
        "overlay_alpha": (1.5, "range"),
        "depth_probe": ("/nonexistent/probe.safetensors", "does not exist"),
    }
    for name, (value, reason) in rejected.items():
        [result] = set_parameters(peer, NODE, **{name: value})
        assert not result.successful, name
        assert reason in result.reason, (name, result.reason)
    results = set_parameters(peer, NODE, output_width=0, feature_channels=0)
    assert all(r.successful for r in results)
    send_and_receive(peer, camera, outputs, frames[1], node)
    assert outputs.messages["flowfeat/features"][-1].encoding == "32FC128"
    assert node.alive()


def test_checkpoint_swap_reload_and_bad_checkpoint_while_streaming(peer, node, camera, outputs,
                                                                   frames, checkpoint, tmp_path):
    diagnostics = Diagnostics(peer, NODE)
    frame = frames[3]
    second = make_checkpoint(tmp_path / "second.safetensors")
    wanted = expected_features(second, frame)

    def features_match(expected: np.ndarray) -> bool:
        msgs = outputs.messages["flowfeat/features"]
        return bool(msgs) and np.allclose(image_msg_to_array(msgs[-1]), expected, atol=2e-3)

    outputs.clear()
    stream_until(peer, camera.send, [frame], lambda: outputs.count("flowfeat/features/pca") >= 5, 30,
                 node)
    [result] = set_parameters(peer, NODE, checkpoint=str(second))
    assert result.successful
    stream_until(peer, camera.send, [frame], lambda: features_match(wanted), 30, node)
    stream_until(peer, camera.send, [frame], lambda: outputs.count("flowfeat/features/pca") >= 30, 30,
                 node)
    gaps = np.diff(outputs.received["flowfeat/features/pca"])
    assert gaps.max() < 1.5, f"output stopped for {gaps.max():.2f} s during the swap"

    # A checkpoint with valid metadata but missing tensors passes validation, fails to load in
    # the background, and is reverted while the running model keeps publishing.
    tensors = load_file(str(second))
    with safe_open(str(second), framework="pt") as handle:
        metadata = handle.metadata()
    assert FORMAT_KEY in metadata
    broken = tmp_path / "broken.safetensors"
    save_file({k: v for k, v in list(tensors.items())[:5]}, str(broken), metadata=metadata)
    [result] = set_parameters(peer, NODE, checkpoint=str(broken))
    assert result.successful  # accepted for loading; the failure comes from the loader
    stream_until(peer, camera.send, [frame], lambda: "missing" in diagnostics.values.get(
        "last_load_error", ""), 30, node)
    assert diagnostics.values["model"] == str(second)
    outputs.clear()
    stream_until(peer, camera.send, [frame], lambda: outputs.count("flowfeat/features") >= 2, 30, node)
    assert features_match(wanted)
    assert "load failed, keeping" in node.output()

    # ~/reload picks up a file replaced on disk.
    make_checkpoint(second)
    replaced = expected_features(second, frame)
    client = peer.create_client(Trigger, f"{NODE}/reload")
    spin_until(peer, client.service_is_ready, 20, "the reload service")
    future = client.call_async(Trigger.Request())
    spin_until(peer, future.done, 60, "reload")
    assert future.result().success, future.result().message
    assert "reloaded" in future.result().message
    stream_until(peer, camera.send, [frame], lambda: features_match(replaced), 30, node)

    # watch_checkpoint reloads on its own when the file changes.
    assert set_parameters(peer, NODE, watch_checkpoint=True)[0].successful
    time.sleep(1.1)  # a distinct modification time
    make_checkpoint(second)
    watched = expected_features(second, frame)
    stream_until(peer, camera.send, [frame], lambda: features_match(watched), 30, node)
    assert set_parameters(peer, NODE, watch_checkpoint=False,
                          checkpoint=str(checkpoint))[0].successful


def raw(header: Header, encoding: str, width: int, height: int, step: int, size: int) -> Image:
    msg = Image(header=header, encoding=encoding, width=width, height=height, step=step)
    msg.data = bytes(size)
    return msg


def test_bad_inputs_are_skipped_with_warnings_and_the_node_keeps_running(peer, node, camera,
                                                                         outputs, frames):
    diagnostics = Diagnostics(peer, NODE)
    jpeg_pub = peer.create_publisher(CompressedImage, "/pn/image/compressed", RELIABLE)
    spin_until(peer, lambda: jpeg_pub.get_subscription_count() > 0, 20, "compressed input")
    # Built when sent: the node drops frames stamped before the newest one it has seen.
    bad_messages = {
        "unsupported encoding": lambda: raw(camera.header(), "rgb9", 320, 240, 960, 960 * 240),
        "step 100 is smaller": lambda: raw(camera.header(), "rgb8", 320, 240, 100, 100 * 240),
        "expected >= 230400": lambda: raw(camera.header(), "rgb8", 320, 240, 960, 1000),
        "zero-size image": lambda: raw(camera.header(), "rgb8", 0, 0, 0, 0),
        "not a jpeg image": lambda: CompressedImage(header=camera.header(), format="jpeg",
                                                    data=b"\xff\xd8 definitely not a jpeg"),
    }
    for problem, make_message in bad_messages.items():
        spin_for(peer, 0.6)  # one warning per problem class and warn_period_s (0.5 s)
        msg = make_message()
        (jpeg_pub if isinstance(msg, CompressedImage) else camera.image).publish(msg)
        spin_until(peer, lambda p=problem: p in node.output(), 10, f"a warning about {problem}",
                   node)
        send_and_receive(peer, camera, outputs, frames[2], node)
    wrong = pinhole_camera_info(640, 480, 60.0)
    wrong.header = camera.header()
    camera.info.publish(wrong)
    spin_for(peer, 0.3)
    before = outputs.count("flowfeat/features")
    camera.send(frames[2], info=False)
    spin_until(peer, lambda: "camera_info is 640x480 but the image is 320x240" in node.output(),
               10, "the camera_info mismatch warning", node)
    assert outputs.count("flowfeat/features") == before  # the frame was skipped
    send_and_receive(peer, camera, outputs, frames[2], node)  # matching info again: processed
    for field, index, value, reason in (("k", 0, float("nan"), "K holds NaN or inf"),
                                        ("p", 2, float("inf"), "P holds NaN or inf"),
                                        ("k", 4, -60.0, "focal lengths must be positive")):
        broken = pinhole_camera_info(320, 240, 60.0)
        values = list(getattr(broken, field))
        values[index] = value
        setattr(broken, field, values)
        broken.header = camera.header()
        spin_for(peer, 0.6)  # one warning per problem class and warn_period_s (0.5 s)
        camera.info.publish(broken)
        spin_for(peer, 0.3)
        before = outputs.count("flowfeat/camera_info")
        camera.send(frames[2], info=False)
        spin_until(peer, lambda r=reason: r in node.output(), 10, f"a warning: {reason}", node)
        assert outputs.count("flowfeat/camera_info") == before  # not republished
        send_and_receive(peer, camera, outputs, frames[2], node)
    spin_until(peer, lambda: int(diagnostics.values.get("invalid_frames", 0)) >= 6, 10,
               "invalid_frames in diagnostics", node)
    assert node.alive()


def test_warnings_are_throttled_per_problem_class_and_counted(peer, node, camera, outputs, frames):
    """Each distinct bad size used to be a new throttle key: 444 bad frames printed 363 lines."""
    diagnostics = Diagnostics(peer, NODE)
    spin_for(peer, 0.6)
    lines_before = node.output().count("skipping frame")
    start = time.monotonic()
    for width in range(100, 140):  # 40 frames, each with a different (short) data size
        camera.image.publish(raw(camera.header(), "rgb8", width, 240, width * 3, 10))
        spin_for(peer, 0.01)
    elapsed = time.monotonic() - start
    send_and_receive(peer, camera, outputs, frames[3], node)
    # Keep-last QoS may drop a few of the 40 on the way; most must be counted.
    spin_until(peer, lambda: int(diagnostics.values.get("problems_bad_image", 0)) >= 30, 10,
               "problems_bad_image in diagnostics", node)
    lines = node.output().count("skipping frame") - lines_before
    assert 1 <= lines <= elapsed / 0.5 + 2, (lines, elapsed)  # warn_period_s 0.5
    spin_for(peer, 0.6)
    camera.image.publish(raw(camera.header(), "rgb8", 99, 240, 99 * 3, 10))
    spin_until(peer, lambda: "more bad_image problems since the last report" in node.output(), 10,
               "the suppressed count in the next warning", node)


def test_depth_and_segmentation_probes_load_at_run_time_and_publish(peer, node, camera, frames,
                                                                    tmp_path):
    depth_file = save_probe(tmp_path / "depth.safetensors", Probe(ProbeSpec(
        task="depth", head="linear", dense_channels=128, encoder_channels=0)))
    seg_file = save_probe(tmp_path / "seg.safetensors", Probe(ProbeSpec(
        task="segmentation", head="linear", dense_channels=128, encoder_channels=0,
        class_names=("ground", "person", "wall"),
        class_colors=((0, 0, 255), (255, 0, 0), (0, 255, 0)))))
    probe_topics = ("/pn/flowfeat/depth", "/pn/flowfeat/depth/relative", "/pn/flowfeat/points",
                    "/pn/flowfeat/segmentation", "/pn/flowfeat/segmentation/overlay")

    def advertised() -> set[str]:
        return {t for t in probe_topics if peer.get_publishers_info_by_topic(t)}

    assert advertised() == set(), "no probe loaded: its topics are not offered"
    assert peer.get_publishers_info_by_topic("/pn/flowfeat/features/pca")
    [wrong_task] = set_parameters(peer, NODE, depth_probe=str(seg_file))
    assert wrong_task.successful  # exists; the loader finds the wrong task and reverts
    spin_until(peer, lambda: "not a depth probe" in node.output(), 30, "wrong-task error", node)
    results = set_parameters(peer, NODE, depth_probe=str(depth_file),
                             segmentation_probe=str(seg_file))
    assert all(r.successful for r in results)
    spin_until(peer, lambda: f"segmentation={seg_file}" in node.output(), 30, "probes loaded",
               node)
    # a deadline, like the waits beside it (10 s ran out once under the full suite's load)
    spin_until(peer, lambda: advertised() == {"/pn/flowfeat/depth", "/pn/flowfeat/points",
                                              "/pn/flowfeat/segmentation",
                                              "/pn/flowfeat/segmentation/overlay"}, 30,
               "the metric depth and segmentation topics", node)
    probes = Outputs(peer, "/pn", ("flowfeat/depth", "flowfeat/depth/colored",
                                   "flowfeat/segmentation", "flowfeat/segmentation/overlay"))
    spin_until(peer, probes.connected, 20, "probe outputs", node)
    header = send_and_receive(peer, camera, probes, frames[4], node, frame_id="probe")
    depth, coloured, seg, overlay = (probes.messages[t][-1] for t in probes.messages)
    for msg in (depth, coloured, seg, overlay):
        assert (msg.header.stamp, msg.header.frame_id) == (header.stamp, "probe")
        assert (msg.width, msg.height) == (160, 120)
    assert (depth.encoding, coloured.encoding) == ("32FC1", "rgb8")
    assert (seg.encoding, overlay.encoding) == ("mono8", "rgb8")
    depth_values = image_msg_to_array(depth)
    assert np.isfinite(depth_values).all() and (depth_values > 0).all()  # exp(log-depth)
    assert image_msg_to_array(seg).max() <= 2
    assert set_parameters(peer, NODE, depth_probe="", segmentation_probe="")[0].successful
    spin_until(peer, lambda: advertised() == set(), 30, "the probe topics withdrawn", node)


def read_point_cloud(msg: PointCloud2) -> np.ndarray:
    """An organised cloud as an HxW structured array, decoded from its own field table."""
    codes = {PointField.FLOAT32: "f4", PointField.UINT32: "u4"}
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": [f.name for f in msg.fields],
                      "formats": [order + codes[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    assert msg.row_step == msg.point_step * msg.width
    return np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width)


def test_point_cloud_is_the_pinhole_unprojection_of_metric_depth(peer, node, camera, frames,
                                                                  tmp_path):
    depth_file = save_probe(tmp_path / "metric.safetensors", Probe(ProbeSpec(
        task="depth", head="linear", dense_channels=128, encoder_channels=0, metric=True)))
    seg_file = save_probe(tmp_path / "seg.safetensors", Probe(ProbeSpec(
        task="segmentation", head="linear", dense_channels=128, encoder_channels=0,
        class_names=("ground", "person", "wall"),
        class_colors=((0, 0, 255), (255, 0, 0), (0, 255, 0)))))
    assert all(r.successful for r in set_parameters(
        peer, NODE, depth_probe=str(depth_file), segmentation_probe=str(seg_file)))
    spin_until(peer, lambda: f"segmentation={seg_file}" in node.output(), 30, "probes loaded",
               node)
    outputs = Outputs(peer, "/pn", ("flowfeat/points", "flowfeat/depth", "flowfeat/camera_info",
                                    "flowfeat/segmentation", "flowfeat/features/pca"))
    spin_until(peer, outputs.connected, 20, "outputs", node)
    header = send_and_receive(peer, camera, outputs, frames[5], node, frame_id="optical")
    cloud_msg, depth_msg, info, seg_msg, pca_msg = (
        next(m for m in outputs.messages[t] if m.header.stamp == header.stamp)
        for t in outputs.messages)
    assert (cloud_msg.header.stamp, cloud_msg.header.frame_id) == (header.stamp, "optical")
    assert (cloud_msg.height, cloud_msg.width) == (info.height, info.width) == (120, 160)
    assert [f.name for f in cloud_msg.fields] == ["x", "y", "z", "rgb", "label"]
    cloud = read_point_cloud(cloud_msg)
    depth = image_msg_to_array(depth_msg)
    np.testing.assert_array_equal(cloud["z"], depth)
    # Projecting every point with the published (scaled) intrinsics lands on its own pixel.
    fx, cx, fy, cy = info.k[0], info.k[2], info.k[4], info.k[5]
    rows, cols = np.mgrid[0:120, 0:160]
    np.testing.assert_allclose(fx * cloud["x"] / cloud["z"] + cx, cols, atol=1e-3)
    np.testing.assert_allclose(fy * cloud["y"] / cloud["z"] + cy, rows, atol=1e-3)
    np.testing.assert_array_equal(cloud["label"], image_msg_to_array(seg_msg))
    rgb = cloud["rgb"].view(np.uint32)
    colours = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=-1)
    np.testing.assert_array_equal(colours, image_msg_to_array(pca_msg))
    assert set_parameters(peer, NODE, depth_probe="", segmentation_probe="")[0].successful


def test_relative_depth_is_published_apart_from_metres(peer, node, camera, frames, tmp_path):
    """REP 118: flowfeat/depth carries metres, so a scale-free probe publishes elsewhere, and
    the metre topics (depth, points) are not even offered."""
    relative_file = save_probe(tmp_path / "relative.safetensors", Probe(ProbeSpec(
        task="depth", head="linear", dense_channels=128, encoder_channels=0, metric=False)))
    assert set_parameters(peer, NODE, depth_probe=str(relative_file))[0].successful
    spin_until(peer, lambda: f"depth={relative_file}" in node.output(), 30, "probe loaded", node)
    outputs = Outputs(peer, "/pn", ("flowfeat/depth/relative", "flowfeat/depth/colored"))
    spin_until(peer, outputs.connected, 20, "outputs", node)
    for index in (6, 7):
        send_and_receive(peer, camera, outputs, frames[index], node)
    relative = outputs.messages["flowfeat/depth/relative"][-1]
    assert relative.encoding == "32FC1" and (relative.width, relative.height) == (160, 120)
    for metres in ("/pn/flowfeat/depth", "/pn/flowfeat/points"):
        assert not peer.get_publishers_info_by_topic(metres), metres
    assert set_parameters(peer, NODE, depth_probe="")[0].successful


def test_a_probe_stops_under_another_model_and_a_misfit_probe_is_refused(peer, node, camera,
                                                                          frames, checkpoint,
                                                                          tmp_path):
    """A probe records the model it was trained on: its outputs stop (WARN naming both models)
    when another model runs, and come back with its own; a probe for another channel count is
    refused at load with the reason while the old state keeps running."""
    diagnostics = Diagnostics(peer, NODE)
    bound = Probe(ProbeSpec(task="depth", head="linear", dense_channels=128, encoder_channels=0,
                            metric=False))
    bound.model_info = {MODEL_DIGEST: model_fingerprint(load_model(checkpoint))}
    probe_file = save_probe(tmp_path / "bound.safetensors", bound)
    relative = "/pn/flowfeat/depth/relative"
    assert set_parameters(peer, NODE, depth_probe=str(probe_file))[0].successful
    spin_until(peer, lambda: peer.get_publishers_info_by_topic(relative), 30, "depth offered", node)
    other = make_checkpoint(tmp_path / "other.safetensors")
    assert set_parameters(peer, NODE, checkpoint=str(other))[0].successful
    spin_until(peer, lambda: not peer.get_publishers_info_by_topic(relative), 30,
               "depth withdrawn under another model", node)
    stream_until(peer, camera.send, [frames[0]], lambda: "was trained on model" in diagnostics.message,
                 30, node)
    assert diagnostics.level == 1 and bound.model_info[MODEL_DIGEST] in diagnostics.message
    assert set_parameters(peer, NODE, checkpoint=str(checkpoint))[0].successful
    spin_until(peer, lambda: peer.get_publishers_info_by_topic(relative), 30, "depth back", node)
    stream_until(peer, camera.send, [frames[0]], lambda: "trained on" not in diagnostics.message, 30,
                 node)

    narrow = save_probe(tmp_path / "narrow.safetensors", Probe(ProbeSpec(
        task="depth", head="linear", dense_channels=64, encoder_channels=0, metric=False)))
    assert set_parameters(peer, NODE, depth_probe=str(narrow))[0].successful  # loads in the back
    stream_until(peer, camera.send, [frames[0]], lambda: "expects 64 dense feature channels; the model "
                 "gives 128" in diagnostics.values.get("last_load_error", ""), 30, node)
    assert peer.get_publishers_info_by_topic(relative)  # the bound probe keeps running
    assert set_parameters(peer, NODE, depth_probe="")[0].successful


@pytest.mark.slow
def test_backend_parameter_swaps_to_onnxruntime_while_streaming(peer, node, camera, outputs,
                                                                frames, checkpoint):
    """The backend swaps like a checkpoint (loaded and checked in the background); a bad one is
    refused and the running one stays. ONNX Runtime runs on the CPU here (a GPU box may lack
    onnxruntime-gpu), so the device is set with it and restored after."""
    results = set_parameters(peer, NODE, backend="onnxruntime", device="cpu")
    assert all(r.successful for r in results), results
    spin_until(peer, lambda: "backend=onnxruntime on cpu" in node.output(), 180,
               "the onnxruntime backend to load", node)
    header = send_and_receive(peer, camera, outputs, frames[6], node)
    features = next(m for m in outputs.messages["flowfeat/features"] if m.header.stamp == header.stamp)
    np.testing.assert_allclose(image_msg_to_array(features), expected_features(checkpoint, frames[6]),
                               atol=2e-3)
    [bad] = set_parameters(peer, NODE, backend="tensorrt-direct")
    assert not bad.successful and "backend must be one of" in bad.reason
    eager_line = f"now running {checkpoint} on "  # any device: the YAML's "auto" is restored
    swaps = node.output().count(eager_line)
    assert all(r.successful for r in set_parameters(peer, NODE, backend="torch", device="auto"))
    spin_until(peer, lambda: node.output().count(eager_line) > swaps, 60, "the eager backend again",
               node)


@pytest.mark.slow
def test_the_default_auto_backend_answers_at_once_and_swaps_in_the_compiled_model(
        peer, frames, tmp_path):
    """``backend: auto`` (the shipped default): the first frame is answered by eager PyTorch while
    the compiled package builds in a child process; /diagnostics and the log show the swap, and
    the compiled model's features equal the model's. The default model at 64x64 is what
    test_auto_backend compiles, so a whole-suite run finds the package cached."""
    params = base_params("default", backend="auto", input_width=64, input_height=64)
    node = PerceptionProcess(tmp_path / "perception.log", params, "/auto")
    try:
        camera = connected_camera(peer, node, "/auto")
        outputs = connected_outputs(peer, node, "/auto", ("flowfeat/features",))
        diagnostics = Diagnostics(peer, "/auto/perception")
        send_and_receive(peer, camera, outputs, frames[0], node)
        assert "backend torch fp32: " in node.output()  # eager answered the first frame
        spin_until(peer, lambda: diagnostics.get("backend_setting") == "auto", 30,
                   "a status naming the backend setting", node)
        plan = fastest_backend(torch.device("cpu"), "fp32", "efficientnet_lite0")
        deadline = time.monotonic() + 900  # a cold compile takes minutes on 2 busy cores
        while diagnostics.get("backend") != plan.backend:
            assert time.monotonic() < deadline, node.output()
            assert not diagnostics.get("backend_status").endswith("eager PyTorch serves"), (
                diagnostics.get("backend_status"))
            send_and_receive(peer, camera, outputs, frames[1], node)
            spin_for(peer, 0.5)
        assert "largest relative error against eager fp32" in diagnostics.get("backend_status")
        assert diagnostics.get("precision") == plan.precision
        assert (f"backend {plan.backend} {plan.precision}: {plan.backend} {plan.precision} "
                "serves 64x64") in node.output()
        header = send_and_receive(peer, camera, outputs, frames[2], node)
        features = next(m for m in outputs.messages["flowfeat/features"]
                        if m.header.stamp == header.stamp)
        eager = Predictor(load_model("default"), device="cpu", input_hw=(64, 64))
        np.testing.assert_allclose(image_msg_to_array(features),
                                   eager.predict(frames[2], as_numpy=True)[0],
                                   atol=1e-3 if plan.precision == "fp32" else 5e-2)
    finally:
        assert node.stop() == 0, node.output()
