"""Label propagation and the object tracker (flowfeat_core.tracking), without ROS: the tiled
propagation against a dense brute-force reference, the live tracker against the offline
protocol, prompts from boxes and pixels, lost and found objects, and bad prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowfeat_core.tracking.prompts import box_region, mask_coverage, pixel_region
from flowfeat_core.tracking.propagation import (
    LabelPropagator,
    PropagationConfig,
    label_indices,
    pool_cells,
    pool_labels,
    propagate_labels,
)
from flowfeat_core.tracking.tracker import ObjectTracker


def dense_reference(features: torch.Tensor, first: np.ndarray, num_labels: int,
                    config: PropagationConfig) -> list[np.ndarray]:
    """The protocol written the obvious way: every cell against every context cell, masked to
    the radius (quadratic memory; fine for small test grids); the same upsampling."""
    cells = F.normalize(F.avg_pool2d(features, config.stride, config.stride, ceil_mode=True), dim=1)
    grid_h, grid_w = cells.shape[-2:]
    cells = cells.flatten(2)
    soft = [pool_labels(first, num_labels, (grid_h, grid_w)).flatten(1)]
    ys, xs = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    near = ((ys[:, None] - ys[None]).abs() <= config.radius) & (
        (xs[:, None] - xs[None]).abs() <= config.radius)
    outputs = [first]
    for target in range(1, len(features)):
        context = [0, *range(max(1, target - config.context_frames), target)]
        keys = torch.cat([cells[i] for i in context], dim=1)
        labels = torch.cat([soft[i] for i in context], dim=1)
        affinity = (cells[target].T @ keys).masked_fill(~near.repeat(1, len(context)), -np.inf)
        values, indices = affinity.topk(config.topk, dim=1)
        weights = torch.softmax(values / config.temperature, dim=1)
        predicted = (labels[:, indices] * weights[None]).sum(-1)
        soft.append(predicted)
        outputs.append(label_indices(predicted.view(num_labels, grid_h, grid_w), first.shape))
    return outputs


def moving_squares(frames: int = 8, height: int = 64, width: int = 96,
                   seed: int = 0) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Features of two textured squares moving over a textured background, and their ids."""
    rng = np.random.default_rng(seed)
    textures = [torch.from_numpy(rng.normal(size=(16, 1, 1))).float() for _ in range(3)]
    features, truth = [], []
    for t in range(frames):
        ids = np.zeros((height, width), np.uint8)
        ids[10 + t:30 + t, 8 + 3 * t:32 + 3 * t] = 1
        ids[36:58, 60 - 2 * t:84 - 2 * t] = 2
        maps = sum(textures[k] * torch.from_numpy(ids == k).float()[None] for k in range(3))
        features.append(maps + 0.3 * torch.from_numpy(rng.normal(size=(16, height, width))).float())
        truth.append(ids)
    return torch.stack(features), truth


@pytest.mark.parametrize("config", [PropagationConfig(), PropagationConfig(radius=3, stride=2),
                                    PropagationConfig(context_frames=1, topk=12, radius=1),
                                    PropagationConfig(context_frames=0, radius=20, stride=8)])
def test_tiled_propagation_equals_the_dense_protocol(config):
    features, truth = moving_squares()
    tiled = propagate_labels(features, truth[0], 3, config)
    dense = dense_reference(features, truth[0], 3, config)
    for mine, reference in zip(tiled, dense, strict=True):
        np.testing.assert_array_equal(mine, reference)


def test_live_tracker_equals_offline_propagation_and_follows_the_objects():
    features, truth = moving_squares(frames=10)
    config = PropagationConfig(stride=4, radius=4)
    offline = propagate_labels(features, truth[0], 3, config)
    tracker = ObjectTracker(config)
    cells = pool_cells(features[0], config.stride)
    tracker.prompt(cells, dict(zip([1, 2], mask_coverage(truth[0], [1, 2], cells.shape[-2:]),
                                   strict=True)))
    first, _ = tracker.track(cells, truth[0].shape)
    assert (first.ids == truth[0]).mean() > 0.97  # the prompted frame keeps its (pooled) prompt
    for frame, expected, true in zip(features[1:], offline[1:], truth[1:], strict=True):
        result, _ = tracker.track(pool_cells(frame, config.stride), truth[0].shape)
        np.testing.assert_array_equal(result.ids, expected)
        for tracked in result.objects:
            pixels = true == tracked.object_id
            iou = (pixels & (result.ids == tracked.object_id)).sum() / (
                pixels | (result.ids == tracked.object_id)).sum()
            assert iou > 0.8, (tracked, iou)
            ys, xs = np.nonzero(result.ids == tracked.object_id)
            assert tracked.box == (xs.min(), ys.min(), xs.max(), ys.max())
            assert tracked.area == len(ys) and 0.5 < tracked.confidence <= 1 and not tracked.lost


def test_memory_is_bounded_and_a_new_prompt_keeps_the_tracked_objects():
    features, truth = moving_squares(frames=10)
    config = PropagationConfig(stride=4, radius=4, context_frames=2)
    tracker = ObjectTracker(config)
    cells = [pool_cells(f, 4) for f in features]
    only_first = np.where(truth[0] == 1, 1, 0).astype(np.uint8)
    tracker.prompt(cells[0], {1: mask_coverage(only_first, [1], cells[0].shape[-2:])[0]})
    for frame in cells[1:6]:
        result, soft = tracker.track(frame, truth[0].shape)
    assert len(tracker._propagator.recent) == 2
    # object 2 prompted on frame 5: object 1 keeps the labels predicted there
    second = mask_coverage(truth[5], [2], cells[5].shape[-2:])[0]
    tracker.prompt(cells[5], {2: second}, (tracker.object_ids, soft))
    assert tracker.object_ids == [1, 2] and len(tracker._propagator.recent) == 0
    result, _ = tracker.track(cells[9], truth[9].shape)
    for object_id in (1, 2):
        pixels = truth[9] == object_id
        assert (pixels & (result.ids == object_id)).sum() / (pixels | (result.ids == object_id)).sum() > 0.7


def follow_object_one(tracker: ObjectTracker, features, truth: np.ndarray
                      ) -> tuple[list[bool], np.ndarray]:
    """Prompt object 1 from the first frame's truth (stride-4 cells), track the other frames:
    whether it was lost in each, and its mask in the last."""
    cells = pool_cells(features[0], 4)
    tracker.prompt(cells, {1: mask_coverage(truth[0], [1], cells.shape[-2:])[0]})
    lost = []
    for frame in features[1:]:
        result, _ = tracker.track(pool_cells(frame, 4), truth[0].shape)
        lost.append(result.objects[0].lost)
    return lost, result.ids == 1


def test_a_lost_object_is_found_again():
    features, truth = moving_squares(frames=12)
    hidden = features.clone()
    background = features[0][:, :4, -4:].mean((1, 2))[:, None, None]
    for t in (4, 5, 6, 7):  # object 1 covered by background texture
        hidden[t] = torch.where(torch.from_numpy(truth[t] == 1)[None], background, hidden[t])
    tracker = ObjectTracker(PropagationConfig(stride=4, radius=6, context_frames=3))
    lost, final = follow_object_one(tracker, hidden, truth)
    assert lost[3:7] == [True] * 4  # frames 4..7: gone
    assert not lost[-1] and tracker.found_again() == 1
    assert (final & (truth[-1] == 1)).sum() / (final | (truth[-1] == 1)).sum() > 0.6


def test_the_last_view_of_a_lost_object_finds_it_again_after_its_look_changed():
    """The object's appearance drifts away from its prompt while it is tracked, then it is
    hidden and comes back with the new look: the prompted frame alone no longer resembles it,
    the kept last view does."""
    _, truth = moving_squares(frames=12)
    rng = np.random.default_rng(4)
    basis = 4 * torch.linalg.qr(torch.from_numpy(rng.normal(size=(16, 3))).float())[0]
    background, old_look, turn = (basis[:, i, None, None] for i in range(3))
    features = []
    for t, ids in enumerate(truth):  # the look turns 24 degrees a frame, 120 in all by frame 5:
        angle = np.radians(24 * min(t, 5))  # the new look is nearer the background than the old
        look = old_look * np.cos(angle) + turn * np.sin(angle)
        shown = torch.from_numpy((ids == 1) & (t < 6 or t > 9))[None].float()  # hidden 6..9
        maps = background * (1 - shown) + look * shown
        features.append(maps + 0.3 * torch.from_numpy(rng.normal(size=maps.shape)).float())
    tracker = ObjectTracker(PropagationConfig(stride=4, radius=6, context_frames=2))
    lost, final = follow_object_one(tracker, features, truth)
    assert lost[:5] == [False] * 5 and lost[5:9] == [True] * 4  # tracked through the drift
    assert not lost[-1] and tracker.found_again() == 1
    assert (final & (truth[-1] == 1)).sum() / (final | (truth[-1] == 1)).sum() > 0.6


def test_box_and_pixel_prompts_grow_the_object_from_the_features():
    features, truth = moving_squares()
    cells = pool_cells(features[0], 4)
    object_cells = mask_coverage(truth[0], [1], cells.shape[-2:])[0].numpy() > 0.5
    rows, cols = np.nonzero(object_cells)
    from_box = box_region(cells, rows.min() - 1, cols.min() - 1, rows.max() + 1, cols.max() + 1)
    from_pixel = pixel_region(cells, int(rows.mean()), int(cols.mean()))
    touched = mask_coverage(truth[0], [1], cells.shape[-2:])[0].numpy() > 0
    for region in (from_box, from_pixel):  # the object, not beyond the cells it touches
        assert (region & object_cells).sum() / (region | object_cells).sum() > 0.6
        assert not (region & ~touched).any()


def test_bad_prompts_raise_with_the_reason():
    tracker = ObjectTracker(PropagationConfig(), max_objects=2)
    cells = F.normalize(torch.randn(8, 6, 8), dim=0)
    full = torch.ones(6, 8)
    with pytest.raises(ValueError, match="no object"):
        tracker.prompt(cells, {})
    with pytest.raises(ValueError, match="covers no pixel"):
        tracker.prompt(cells, {1: torch.zeros(6, 8)})
    with pytest.raises(ValueError, match=r"not in 1\.\.65535"):
        tracker.prompt(cells, {0: full})
    with pytest.raises(ValueError, match="does not match"):
        tracker.prompt(cells, {1: torch.ones(3, 3)})
    with pytest.raises(ValueError, match="at most 2"):
        tracker.prompt(cells, {1: full, 2: full, 3: full})
    assert not tracker.active
    with pytest.raises(RuntimeError, match="no object"):
        tracker.track(cells, (24, 32))
    tracker.prompt(cells, {300: full})
    result, _ = tracker.track(cells, (24, 32))
    assert result.ids.dtype == np.uint16 and set(np.unique(result.ids)) == {300}
    assert tracker.clear() == 1 and not tracker.active


def test_propagator_refuses_mismatched_cells():
    propagator = LabelPropagator()
    with pytest.raises(RuntimeError, match="no anchor"):
        propagator.predict(torch.zeros(4, 5, 5))
    propagator.set_anchor(torch.zeros(4, 5, 5), torch.ones(2, 5, 5))
    with pytest.raises(ValueError, match="do not match"):
        propagator.predict(torch.zeros(4, 6, 5))


def test_prompts_one_after_another_on_one_frame_keep_each_other():
    features, truth = moving_squares()
    tracker = ObjectTracker(PropagationConfig(stride=4, radius=4))
    cells = pool_cells(features[0], 4)
    tracker.prompt(cells, {1: mask_coverage(truth[0], [1], cells.shape[-2:])[0]})
    tracker.prompt(cells, {2: mask_coverage(truth[0], [2], cells.shape[-2:])[0]},
                   tracker.anchor_labels())
    result, _ = tracker.track(pool_cells(features[1], 4), truth[1].shape)
    assert tracker.object_ids == [1, 2] and set(np.unique(result.ids)) == {0, 1, 2}


@pytest.mark.parametrize("num_labels", [3, 128, 200])
def test_label_indices_resize_every_label_as_torch_does(num_labels: int) -> None:
    """More labels than an OpenCV 5 image has channels (128; the real yardstick's superpixels
    number about 180) are resized in groups, with the same result as torch's bilinear resize."""
    soft = torch.rand(num_labels, 6, 7, generator=torch.Generator().manual_seed(num_labels))
    want = F.interpolate(soft[None], size=(24, 28), mode="bilinear", align_corners=False)[0]
    got = label_indices(soft, (24, 28))
    assert got.shape == (24, 28) and got.dtype == np.uint8
    assert (got == want.argmax(0).numpy()).mean() > 0.999
