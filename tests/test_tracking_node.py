"""Live object tracking in the perception node (separate process, shipped default model) fed a
benchmark sequence with moving objects by a real rclpy peer: a mask prompt gives the masks of
offline propagation, box and pixel prompts follow an object, bad prompts change nothing."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point32, PolygonInstanceStamped
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from test_perception_support import (
    RELIABLE,
    Diagnostics,
    PerceptionProcess,
    base_params,
    call_trigger,
    connected_camera,
    peer,
    spin_for,
    spin_until,
)

from flowfeat_core.hub.loading import load_model
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.probes.vos_metrics import jf_scores
from flowfeat_core.synthetic.benchmark import generate_sequence
from flowfeat_core.tracking.propagation import PropagationConfig, propagate_labels
from flowfeat_ros.image_conversion import image_msg_to_array, mono8_to_msg, rgb8_to_msg

pytestmark = pytest.mark.ros
__all__ = ["peer"]
PREFIX = "/tk"
NETWORK_HW = (120, 160)
TRACK = {"track_stride": 4, "track_radius": 6, "track_context_frames": 3}
CONFIG = PropagationConfig(context_frames=3, topk=5, temperature=0.1, radius=6, stride=4)
#: The benchmark's test sequence: object 2 (4731 px at 320x240) moves 27 px down, 40 px left.
SEQUENCE = {"seed": 7, "index": 0, "split": "test", "height": 240, "width": 320, "frames": 12}
BIG_OBJECT = 2


@pytest.fixture(scope="module")
def sequence() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RGB frames at 320x240 and their instance masks at the outputs' 160x120."""
    frames = generate_sequence(**SEQUENCE).frames
    small = [cv2.resize(f.instances, NETWORK_HW[::-1], interpolation=cv2.INTER_NEAREST)
             for f in frames]
    return [f.rgb for f in frames], small


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> PerceptionProcess:
    log = tmp_path_factory.mktemp("logs") / "perception.log"
    process = PerceptionProcess(log, base_params("default", **TRACK), PREFIX)
    yield process
    assert process.stop() == 0, process.output()


class Tracking:
    """The test's side of the track topics: prompts out, masks and objects in."""

    def __init__(self, peer, node) -> None:
        self.peer, self.node = peer, node
        self.camera = connected_camera(peer, node, PREFIX)
        self.status = Diagnostics(peer, f"{PREFIX}/perception")
        self.prompt = peer.create_publisher(Image, f"{PREFIX}/flowfeat/track/prompt", RELIABLE)
        self.region = peer.create_publisher(PolygonInstanceStamped,
                                            f"{PREFIX}/flowfeat/track/prompt_region", RELIABLE)
        self.masks: list[Image] = []
        self.objects: list[DiagnosticArray] = []
        self.subscriptions = [
            peer.create_subscription(Image, f"{PREFIX}/flowfeat/track/mask", self.masks.append,
                                     RELIABLE),
            peer.create_subscription(DiagnosticArray, f"{PREFIX}/flowfeat/track/objects",
                                     self.objects.append, RELIABLE)]
        spin_until(peer, lambda: all(s.get_publisher_count() for s in self.subscriptions)
                   and self.prompt.get_subscription_count() and self.region.get_subscription_count(),
                   60, "the track topics to match", node)

    def send(self, rgb: np.ndarray) -> tuple[Header, Image]:
        """Send a frame, wait for its mask (an earlier frame's may still be on its way)."""
        header = self.camera.send(rgb)

        def mask() -> Image | None:
            return next((m for m in reversed(self.masks) if m.header.stamp == header.stamp), None)

        spin_until(self.peer, lambda: mask() is not None, 30, "the frame's track mask", self.node)
        return header, mask()

    def send_unanswered(self, rgb: np.ndarray) -> Header:
        """Send a frame while nothing is tracked (no mask comes); wait until it is processed."""
        self.status.values = {}  # a status sent after everything before was processed
        spin_until(self.peer, lambda: self.status.get("processed_frames"), 10, "a new status",
                   self.node)
        before = int(self.status.get("processed_frames"))
        header = self.camera.send(rgb)
        spin_until(self.peer, lambda: int(self.status.get("processed_frames") or 0) > before, 30,
                   "the frame to be processed", self.node)
        return header

    def clear(self) -> str:
        return call_trigger(self.peer, f"{PREFIX}/perception/track_clear", self.node).message

    def send_region(self, header: Header, points: list[tuple[float, float]], object_id: int) -> None:
        msg = PolygonInstanceStamped(header=header)
        msg.polygon.polygon.points = [Point32(x=float(x), y=float(y)) for x, y in points]
        msg.polygon.id = object_id
        self.region.publish(msg)


@pytest.fixture(scope="module")
def tracking(peer, node) -> Tracking:
    return Tracking(peer, node)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    return float((mask & truth).sum() / max((mask | truth).sum(), 1))


def offline_masks(frames: list[np.ndarray], first: np.ndarray, num_labels: int) -> list[np.ndarray]:
    predictor = Predictor(load_model("default"), device="cpu", input_hw=NETWORK_HW)
    features = torch.cat([predictor.run(predictor.preprocess([rgb]))[1] for rgb in frames])
    return propagate_labels(features, first, num_labels, CONFIG)


def test_a_mask_prompt_gives_the_masks_of_offline_propagation(tracking, sequence):
    frames, truth = sequence
    objects = [int(i) for i in np.unique(truth[0]) if i]
    header = tracking.send_unanswered(frames[0])
    tracking.prompt.publish(mono8_to_msg(truth[0], header))  # drawn on frame 0, sent after it
    live = [image_msg_to_array(tracking.send(rgb)[1]).copy() for rgb in frames[1:]]
    offline = offline_masks(frames, truth[0], max(objects) + 1)
    live_jf = jf_scores([truth[0], *live], truth, objects)
    offline_jf = jf_scores(offline, truth, objects)
    assert live_jf["jf"] == pytest.approx(offline_jf["jf"], abs=0.01), (live_jf, offline_jf)
    assert np.mean([(a == b).mean() for a, b in zip(live, offline[1:], strict=True)]) > 0.99
    assert iou(live[-1] == BIG_OBJECT, truth[-1] == BIG_OBJECT) > 0.6
    last_stamp = tracking.masks[-1].header.stamp
    spin_until(tracking.peer, lambda: any(m.header.stamp == last_stamp for m in tracking.objects),
               10, "the last frame's objects")
    last = next(m for m in tracking.objects if m.header.stamp == last_stamp)
    boxes = {s.name: {kv.key: kv.value for kv in s.values} for s in last.status}
    ys, xs = np.nonzero(live[-1] == BIG_OBJECT)
    assert [boxes[f"object {BIG_OBJECT}"][key] for key in ("x_min", "y_min", "x_max", "y_max")] \
        == [str(xs.min()), str(ys.min()), str(xs.max()), str(ys.max())]
    assert float(boxes[f"object {BIG_OBJECT}"]["confidence"]) > 0.5
    assert tracking.clear() == f"cleared {len(objects)} tracked objects"


@pytest.mark.parametrize("kind", ["box", "pixel"])
def test_box_and_pixel_prompts_follow_the_object(tracking, sequence, kind):
    frames, truth = sequence
    tracking.clear()
    header = tracking.send_unanswered(frames[0])
    full = cv2.resize(truth[0], (320, 240), interpolation=cv2.INTER_NEAREST) == BIG_OBJECT
    ys, xs = np.nonzero(full)
    if kind == "box":
        points = [(xs.min(), ys.min()), (xs.max(), ys.max())]
    else:
        inside = cv2.distanceTransform(full.astype(np.uint8), cv2.DIST_L2, 5)
        row, col = np.unravel_index(inside.argmax(), inside.shape)  # deep inside the object
        points = [(col, row)]
    tracking.send_region(header, points, 9)
    masks = [image_msg_to_array(tracking.send(rgb)[1]).copy() for rgb in frames[1:]]
    for mask, true in ((masks[0] == 9, truth[1] == BIG_OBJECT), (masks[-1] == 9, truth[-1] == BIG_OBJECT)):
        inside, covered = (mask & true).sum() / max(mask.sum(), 1), (mask & true).sum() / true.sum()
        if kind == "box":  # the box gives the whole object
            assert iou(mask, true) > 0.5, (inside, covered)
        else:  # a pixel grows over its object; with the default model's features it also
            # leaks into similar surroundings (measured: 30 % inside), well above the object's
            # 6 % share of the image that a blind guess would give
            assert covered > 0.5 and inside > 0.2 and mask.mean() < 0.3, (inside, covered)


def test_bad_prompts_get_a_warning_and_change_nothing(tracking, sequence, peer, node):
    frames, truth = sequence
    tracking.clear()
    header = tracking.send_unanswered(frames[0])
    tracking.prompt.publish(mono8_to_msg(truth[0], header))
    before = image_msg_to_array(tracking.send(frames[1])[1]).copy()
    status = tracking.status
    spin_until(peer, lambda: status.get("track_objects") not in ("", "0"), 10, "diagnostics")
    problems_before = int(status.get("problems_bad_prompt") or 0)
    never_sent = Header(stamp=header.stamp, frame_id="cam")
    never_sent.stamp.nanosec = (never_sent.stamp.nanosec + 1) % 1_000_000_000
    bad = [rgb8_to_msg(frames[0], header),  # unknown encoding
           mono8_to_msg(np.zeros_like(truth[0]), header),  # empty
           mono8_to_msg(np.ones((50, 100), np.uint8), header),  # wrong size
           mono8_to_msg(truth[0], never_sent)]  # a frame that never came
    for msg in bad:
        tracking.prompt.publish(msg)
    tracking.send_region(header, [], 3)  # a region without points
    after = image_msg_to_array(tracking.send(frames[1])[1])
    assert set(np.unique(after)) == set(np.unique(before))  # same objects, same places (the
    for object_id in np.unique(before)[1:]:  # memory now holds one more frame)
        assert iou(after == object_id, before == object_id) > 0.9
    # prompts and frames travel on different topics: a prompt that arrives after its frame was
    # processed waits for the next one, so keep frames coming while waiting for the count
    deadline = time.monotonic() + 30
    while int(status.get("problems_bad_prompt") or 0) < problems_before + 5:
        assert time.monotonic() < deadline, f"five bad prompts not counted\n{node.output()}"
        tracking.send(frames[1])
        spin_for(peer, 0.5)
    assert status.get("track_objects") == str(len(np.unique(truth[0])) - 1)
    log = node.output()
    assert "track prompt ignored" in log and node.alive()
