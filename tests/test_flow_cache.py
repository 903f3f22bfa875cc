"""Flow cache: keys, float16 round trip, atomic files, corrupt files, and speed against DIS."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flowfeat_core.training.flow_cache import FlowCache, flow_cache_key
from flowfeat_core.training.teacher_flow import DISFlow


@pytest.fixture(scope="module")
def basketball_flow(opencv_data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real 640 x 480 basketball pair (RGB) and its DIS flow."""
    frames = [cv2.imread(str(opencv_data_dir / f"basketball{i}.png")) for i in (1, 2)]
    if any(frame is None for frame in frames):
        pytest.fail(f"cannot read basketball1/2.png in {opencv_data_dir}")
    frame_a, frame_b = (cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in frames)
    return frame_a, frame_b, DISFlow()(frame_a, frame_b)


def test_key_is_stable_and_sensitive_to_every_field() -> None:
    base = ("bag_2024/cam0", 10, 12, "dis_medium", (480, 640))
    key = flow_cache_key(*base)
    assert key == flow_cache_key(*base)
    assert key.isalnum()
    variants = [
        ("bag_2024/cam1", 10, 12, "dis_medium", (480, 640)),
        ("bag_2024/cam0", 11, 12, "dis_medium", (480, 640)),
        ("bag_2024/cam0", 10, 13, "dis_medium", (480, 640)),
        ("bag_2024/cam0", 12, 10, "dis_medium", (480, 640)),
        ("bag_2024/cam0", 10, 12, "farneback", (480, 640)),
        ("bag_2024/cam0", 10, 12, "dis_medium", (640, 480)),
    ]
    assert len({key, *(flow_cache_key(*variant) for variant in variants)}) == 1 + len(variants)


def test_round_trip_in_float16(tmp_path: Path, basketball_flow) -> None:
    flow = basketball_flow[2]
    cache = FlowCache(tmp_path)
    key = flow_cache_key("basketball", 1, 2, "dis_medium", flow.shape[:2])
    assert cache.get(key) is None
    cache.put(key, flow)
    loaded = cache.get(key)
    assert loaded is not None and loaded.dtype == np.float32 and loaded.shape == flow.shape
    # float16 keeps 11 significant bits: relative error <= 2^-11.
    np.testing.assert_allclose(loaded, flow, rtol=2**-11, atol=1e-6)
    assert np.load(cache.path(key)).dtype == np.float16
    assert [p.name for p in cache.path(key).parent.iterdir()] == [f"{key}.npy"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_shape"])
def test_damaged_file_is_a_miss_and_gets_overwritten(tmp_path: Path, damage: str) -> None:
    cache = FlowCache(tmp_path)
    key = flow_cache_key("video", 0, 1, "dis_medium", (24, 32))
    flow = np.random.default_rng(0).normal(size=(24, 32, 2)).astype(np.float32)
    cache.put(key, flow)
    path = cache.path(key)
    content = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a numpy file at all")
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.save(path, np.zeros((24, 32, 3), np.float16))
    assert cache.get(key) is None
    cache.put(key, flow)
    np.testing.assert_allclose(cache.get(key), flow, rtol=2**-11, atol=1e-6)


def test_rejects_bad_input(tmp_path: Path) -> None:
    cache = FlowCache(tmp_path)
    key = flow_cache_key("video", 0, 1, "dis_medium", (4, 4))
    with pytest.raises(ValueError, match="H x W x 2"):
        cache.put(key, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="float16"):
        cache.put(key, np.full((4, 4, 2), 1e6, np.float32))
    with pytest.raises(ValueError, match="alphanumeric"):
        cache.get("../escape")
    assert not any(tmp_path.rglob("*"))
