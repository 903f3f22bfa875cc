"""The perception node treated as a hostile camera and a careless operator would treat it (real
node process, real messages): oversized and extreme frames, a decompression bomb, a future
stamp, unusable PCA bases and checkpoints with impossible configs. The node must refuse each with
a reason, keep its worker alive and keep serving good frames with bounded memory."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from builtin_interfaces.msg import Time
from hostile_images import late_header_jpeg, rle_bmp_bomb
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
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
    peer,
    read_frames,
    set_parameters,
    spin_for,
    spin_until,
)

from flowfeat_core.hub.checkpoint import CONFIG_KEY
from flowfeat_core.inference.pca import FeaturePCA
from flowfeat_ros.image_conversion import rgb8_to_msg
from flowfeat_ros.playback.frame_source import pinhole_camera_info

pytestmark = pytest.mark.ros
NODE = "/abuse/perception"
#: Peak resident memory the node may reach while abused (it idles at about 1 GB here; the old
#: code reached 8.2 GB on one 10000x10 frame).
PEAK_RSS_LIMIT_BYTES = 3 * 1024**3
__all__ = ["checkpoint", "peer"]  # fixtures used by this module


@pytest.fixture(scope="module")
def node(checkpoint, tmp_path_factory) -> PerceptionProcess:
    log = tmp_path_factory.mktemp("abuse") / "perception.log"
    # on the CPU everywhere: the memory bound is about frames, not about a CUDA context
    process = PerceptionProcess(log, base_params(checkpoint, input_transport="both", device="cpu"),
                                "/abuse")
    yield process
    assert process.stop() == 0, process.output()
    assert "Traceback" not in process.output()


@pytest.fixture(scope="module")
def camera(peer, node) -> Camera:
    return connected_camera(peer, node, "/abuse")


@pytest.fixture(scope="module")
def outputs(peer, node) -> Outputs:
    return connected_outputs(peer, node, "/abuse", ("flowfeat/features/pca",))


def good_frame_gets_output(peer, camera, outputs, node, rgb: np.ndarray) -> None:
    before = outputs.count("flowfeat/features/pca")
    camera.send(rgb, info=False)
    spin_until(peer, lambda: outputs.count("flowfeat/features/pca") > before, 30,
               "an output for a good frame", node)


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def test_extreme_and_oversized_frames_are_refused_and_the_stream_goes_on(peer, node, camera,
                                                                         outputs):
    """A 10000x10 frame used to make the model raise, the error report raise in turn and the
    worker thread die with the node still up; a small PNG can decode to gigabytes."""
    good = read_frames(1, (160, 120))[0]
    good_frame_gets_output(peer, camera, outputs, node, good)
    jpeg = peer.create_publisher(CompressedImage, "/abuse/image/compressed", RELIABLE)
    spin_until(peer, lambda: jpeg.get_subscription_count() > 0, 20, "compressed input", node)
    strip = rgb8_to_msg(np.full((10, 10000, 3), 128, np.uint8), camera.header())
    camera.image.publish(strip)
    spin_until(peer, lambda: "aspect ratio 1000.0" in node.output(), 20, "the aspect refusal", node)
    good_frame_gets_output(peer, camera, outputs, node, good)
    bomb = cv2.imencode(".png", np.zeros((6000, 6000), np.uint8))[1].tobytes()  # 36 MP, ~36 KB
    spin_for(peer, 0.6)  # past warn_period_s: the next too_large problem is logged again
    jpeg.publish(CompressedImage(header=camera.header(), format="png", data=bomb))
    spin_until(peer, lambda: "6000x6000 has 36000000 pixels" in node.output(), 20,
               "the pixel-count refusal", node)
    good_frame_gets_output(peer, camera, outputs, node, good)
    for data, refusal in ((rle_bmp_bomb(), "not a png image"),  # 30000x30000 RLE BMP as "png"
                          (late_header_jpeg(good), "20000x16000 has 320000000 pixels")):
        spin_for(peer, 0.6)
        jpeg.publish(CompressedImage(header=camera.header(), format="png" if data[:2] == b"BM"
                                     else "jpeg", data=data))
        spin_until(peer, lambda r=refusal: r in node.output(), 20, f"refusal: {refusal}", node)
        good_frame_gets_output(peer, camera, outputs, node, good)
    assert peak_rss_bytes(node.proc.pid) < PEAK_RSS_LIMIT_BYTES
    diagnostics = Diagnostics(peer, NODE)
    spin_until(peer, lambda: int(diagnostics.values.get("problems_too_large", 0)) >= 2, 10,
               "problems_too_large in diagnostics", node)
    assert diagnostics.values["worker_restarts"] == "0" and diagnostics.level == 0


def test_one_future_stamped_frame_cannot_stall_the_stream(peer, node, camera, outputs):
    """The drop-older-than-newest rule kept rejecting good frames until real time passed the
    bad stamp: for a far-future stamp, forever."""
    future = Header(stamp=Time(sec=camera.header().stamp.sec + 10**6), frame_id="cam")
    bad = Image(header=future, height=120, width=160, encoding="rgb9", step=480,
                data=bytes(480 * 120))
    camera.image.publish(bad)  # undecodable too: the stamp alone must not matter
    spin_for(peer, 0.5)
    good = read_frames(2, (160, 120))
    for rgb in good:
        good_frame_gets_output(peer, camera, outputs, node, rgb)
    assert "stamp jumped back" in node.output()


def _checkpoint_with_config(source: Path, target: Path, **changes: object) -> Path:
    tensors = load_file(str(source))
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
    config = json.loads(metadata[CONFIG_KEY])
    config.update(changes)
    metadata[CONFIG_KEY] = json.dumps(config)
    save_file(tensors, str(target), metadata=metadata)
    return target


@pytest.mark.parametrize(("changes", "reason"), [
    ({"fdim": -1}, "ModelConfig.fdim must be an integer in [1, 4096], got -1"),
    ({"mean": [0.5]}, "ModelConfig.mean must be 3 finite numbers"),
    ({"decoder_width": "abc"}, "ModelConfig.decoder_width must be an integer"),
    ({"decoder_width": 200000}, "got 200000"),
    ({"input_short_side": -5}, "ModelConfig.input_short_side must be an integer in [16, 4096]"),
])
def test_checkpoint_with_an_impossible_config_is_refused_with_the_field(peer, node, checkpoint,
                                                                        tmp_path, changes, reason):
    """These used to raise RuntimeError/TypeError deep in torch: accepted, never reverted, no log."""
    bad = _checkpoint_with_config(checkpoint, tmp_path / "bad.safetensors", **changes)
    [result] = set_parameters(peer, NODE, checkpoint=str(bad))
    assert not result.successful and reason in result.reason, result.reason
    assert node.alive()


def test_pca_basis_is_validated_against_the_running_model(peer, node, tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(os.urandom(4096))
    [result] = set_parameters(peer, NODE, pca_basis=str(garbage))
    assert not result.successful and "not a safetensors file" in result.reason, result.reason
    narrow = tmp_path / "narrow.safetensors"
    FeaturePCA.fit(torch.randn(500, 64), n_components=3).save(narrow)  # a 64-channel basis
    [result] = set_parameters(peer, NODE, pca_basis=str(narrow))
    assert not result.successful, "a 64-channel basis must not reach a 128-channel model"
    assert "projects 64-channel features; the model has 128" in result.reason
    assert node.alive()


def _fuzz_message(rng: random.Random, camera: Camera, good: np.ndarray, jpeg: bytes):
    """One hostile message: (kind, message) for the image, compressed or camera_info topic."""
    header = camera.header()
    if rng.random() < 0.15:  # stamps far in the future or past
        header.stamp.sec = max(0, header.stamp.sec + rng.choice([-1, 1]) * rng.randint(2, 10**6))
    kind = rng.choice(["raw", "raw", "float", "compressed", "info", "extreme"])
    if kind == "raw":
        encoding = rng.choice(["rgb8", "bgr8", "mono8", "mono16", "16UC1", "rgba8", "", "rgb9",
                               "bayer_rggb8", "yuv422", "8UC3"])
        width, height = rng.randint(0, 400), rng.randint(0, 300)
        step = rng.choice([width * 3, width, 0, rng.randint(0, 2000)])
        size = rng.choice([step * height, rng.randint(0, 5000), 0])
        return "image", Image(header=header, width=width, height=height, encoding=encoding,
                              step=step, data=rng.randbytes(min(size, 400_000)))
    if kind == "float":
        values = np.full((60, 80), np.nan if rng.random() < 0.5 else np.inf, np.float32)
        return "image", Image(header=header, width=80, height=60, encoding="32FC1", step=320,
                              data=values.tobytes())
    if kind == "compressed":
        data = rng.choice([rng.randbytes(rng.randint(0, 3000)), jpeg[:rng.randint(1, len(jpeg))],
                           b"\x89PNG\r\n\x1a\n" + rng.randbytes(40), b"", jpeg])
        fmt = rng.choice(["jpeg", "png", "rgb8; compressedDepth", "", "bmp"])
        return "compressed", CompressedImage(header=header, format=fmt, data=data)
    if kind == "info":
        info = pinhole_camera_info(rng.choice([0, 160, 640, 10**6]), rng.choice([0, 120, 3]), 60.0)
        info.k[0] = rng.choice([info.k[0], 0.0, float("nan"), -5.0])
        info.header = header
        return "info", info
    if rng.random() < 0.5:
        return "image", rgb8_to_msg(np.zeros((10, 10000, 3), np.uint8), header)
    bomb = cv2.imencode(".png", np.zeros((6000, 6000), np.uint8))[1].tobytes()
    return "compressed", CompressedImage(header=header, format="png", data=bomb)


def test_fuzzed_inputs_never_kill_the_node_or_its_worker(peer, node, camera, outputs):
    """A seeded stream of hostile Image/CompressedImage/CameraInfo messages interleaved with good
    frames: afterwards the node and its worker live, every good frame gets its output, peak
    memory stays bounded and the log holds no traceback."""
    rng = random.Random(20261126)
    good = read_frames(1, (160, 120))[0]
    jpeg = cv2.imencode(".jpg", good)[1].tobytes()
    compressed = peer.create_publisher(CompressedImage, "/abuse/image/compressed", RELIABLE)
    spin_until(peer, lambda: compressed.get_subscription_count() > 0, 20, "compressed input", node)
    publishers = {"image": camera.image, "compressed": compressed, "info": camera.info}
    for index in range(400):
        if index % 10 == 0:
            camera.send(good)
        else:
            topic, msg = _fuzz_message(rng, camera, good, jpeg)
            publishers[topic].publish(msg)
        spin_for(peer, 0.005)
    spin_for(peer, 1.5)  # past the reorder window of any fuzzed stamp
    for _ in range(3):
        before = outputs.count("flowfeat/features/pca")
        camera.send(good)  # with a matching camera_info again
        spin_until(peer, lambda b=before: outputs.count("flowfeat/features/pca") > b, 30,
                   "an output for a good frame after the fuzz", node)
    diagnostics = Diagnostics(peer, NODE)
    spin_until(peer, lambda: "worker_restarts" in diagnostics.values, 10, "diagnostics", node)
    assert diagnostics.values["worker_restarts"] == "0"
    assert node.alive() and peak_rss_bytes(node.proc.pid) < PEAK_RSS_LIMIT_BYTES
    assert "Traceback" not in node.output()


def test_network_input_beyond_the_size_limit_is_refused(peer, node):
    """input_width/height 8192 used to be accepted (a 8192x8192 network input on a robot)."""
    results = set_parameters(peer, NODE, input_width=8192, input_height=8192)
    assert results and not any(r.successful for r in results)
    assert all("out of range" in r.reason or "input_width" in r.reason for r in results), results
    assert node.alive()


def test_a_new_max_rate_applies_at_once(peer, node, camera, outputs):
    """A frame processed at 0.01 Hz used to schedule the next one 100 s later, whatever the rate
    was changed to meanwhile (1e-6 would have stalled for days)."""
    good_frame_gets_output(peer, camera, outputs, node, np.full((120, 160, 3), 60, np.uint8))
    assert set_parameters(peer, NODE, max_rate_hz=0.01)[0].successful
    camera.send(np.full((120, 160, 3), 70, np.uint8))
    spin_for(peer, 1.0)
    assert set_parameters(peer, NODE, max_rate_hz=0.0)[0].successful
    header = camera.send(np.full((120, 160, 3), 80, np.uint8))
    spin_until(peer, lambda: any(m.header.stamp == header.stamp
                                 for m in outputs.messages["flowfeat/features/pca"]), 20,
               "the frame sent after the rate went back to 0", node)
