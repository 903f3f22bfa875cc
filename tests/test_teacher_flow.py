"""Teacher optical flow on real opencv-doc images; RAFT weight resolution; flow normalisation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.models.optical_flow import raft_small

from flowfeat_core.training.teacher_flow import (
    DISFlow,
    FarnebackFlow,
    RAFTFlow,
    TeacherFlow,
    make_teacher_flow,
    normalize_flow,
    raft_weights_path,
)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        pytest.fail(f"cannot read test image {path} (Debian package opencv-doc)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def vtest_frame(sample_video: Path) -> np.ndarray:
    """First frame of vtest.avi (768 x 576), RGB."""
    capture = cv2.VideoCapture(str(sample_video))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        pytest.fail(f"cannot decode {sample_video}")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _shifted_pair(image: np.ndarray, shift_xy: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two 320 x 240 windows where the content moves by ``shift_xy`` pixels from a to b."""
    dx, dy = shift_xy
    top, left = 200, 250
    frame_a = image[top : top + 240, left : left + 320]
    frame_b = image[top - dy : top - dy + 240, left - dx : left - dx + 320]
    return np.ascontiguousarray(frame_a), np.ascontiguousarray(frame_b)


@pytest.mark.parametrize(
    "teacher", [DISFlow(), DISFlow("fast"), FarnebackFlow()], ids=lambda teacher: teacher.name
)
@pytest.mark.parametrize("shift_xy", [(3, -2), (-5, 4)])
def test_recovers_known_translation(
    vtest_frame: np.ndarray, teacher: TeacherFlow, shift_xy: tuple[int, int]
) -> None:
    frame_a, frame_b = _shifted_pair(vtest_frame, shift_xy)
    flow = teacher(frame_a, frame_b)
    assert flow.shape == (240, 320, 2) and flow.dtype == np.float32
    error = np.linalg.norm(flow - np.asarray(shift_xy, dtype=np.float32), axis=2)
    assert np.median(error) < 0.5, teacher.name


@pytest.mark.parametrize("teacher", [DISFlow(), FarnebackFlow()], ids=lambda teacher: teacher.name)
def test_flow_warps_real_pair_into_alignment(teacher: TeacherFlow, opencv_data_dir: Path) -> None:
    """Sampling basketball2 at p + flow(p) reproduces basketball1 far better than no motion."""
    frame_a = _read_rgb(opencv_data_dir / "basketball1.png")
    frame_b = _read_rgb(opencv_data_dir / "basketball2.png")
    flow = teacher(frame_a, frame_b)
    assert flow.shape == (480, 640, 2) and np.isfinite(flow).all()
    grid_x, grid_y = np.meshgrid(np.arange(640, dtype=np.float32), np.arange(480, dtype=np.float32))
    warped = cv2.remap(frame_b, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR)
    still_error = np.abs(frame_b.astype(np.float32) - frame_a).mean()
    warped_error = np.abs(warped.astype(np.float32) - frame_a).mean()
    assert warped_error < 0.7 * still_error


def test_rejects_bad_frames() -> None:
    frame = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        DISFlow()(frame.astype(np.float32), frame)
    with pytest.raises(ValueError, match="differ in size"):
        DISFlow()(frame, frame[:16])
    with pytest.raises(ValueError, match="3 channels"):
        FarnebackFlow()(frame[..., :2].copy(), frame[..., :2].copy())


def test_normalize_flow_per_image_and_channel() -> None:
    generator = torch.Generator().manual_seed(0)
    flow = (
        torch.randn(3, 2, 20, 30, generator=generator) * torch.tensor([1.0, 5.0, 0.1])[:, None, None, None]
        + 7.0
    )
    normalised = normalize_flow(flow)
    torch.testing.assert_close(normalised.mean(dim=(2, 3)), torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised.std(dim=(2, 3)), torch.ones(3, 2), atol=1e-3, rtol=0)
    from_numpy = normalize_flow(flow.numpy())
    assert isinstance(from_numpy, np.ndarray)
    np.testing.assert_allclose(from_numpy, normalised.numpy(), atol=1e-5)
    constant = normalize_flow(torch.full((2, 5, 5), 3.0))
    assert torch.equal(constant, torch.zeros(2, 5, 5))
    with pytest.raises(ValueError, match="2 x H x W"):
        normalize_flow(torch.zeros(1, 3, 4, 4))


def test_make_teacher_flow_by_name(tmp_path: Path) -> None:
    assert make_teacher_flow("dis").name == "dis_medium"
    assert make_teacher_flow("dis", preset="ultrafast").name == "dis_ultrafast"
    assert make_teacher_flow("farneback").name == "farneback"
    with pytest.raises(ValueError, match="unknown teacher flow 'pwc'"):
        make_teacher_flow("pwc")
    with pytest.raises(ValueError, match="unknown DIS preset"):
        make_teacher_flow("dis", preset="slow")


@pytest.fixture(scope="module")
def random_raft_small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised raft_small state_dict saved as a plain tensor file."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("raft") / "raft_small_random.pth"
    torch.save(raft_small(weights=None, progress=False).state_dict(), path)
    return path


@pytest.fixture
def empty_hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torch.hub at an empty cache for the duration of one test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "hub"


@pytest.mark.parametrize(
    ("name", "file_name"),
    [("raft_small", "raft_small_C_T_V2-01064c6d.pth"), ("raft_large", "raft_large_C_T_SKHT_V2")],
)
def test_raft_offline_error_names_file_and_place(empty_hub_dir: Path, name: str, file_name: str) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        make_teacher_flow(name, allow_download=False)
    message = str(caught.value)
    assert file_name in message
    assert str(empty_hub_dir / "checkpoints") in message
    assert "\n" not in message


def test_raft_missing_explicit_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RAFT weights file not found"):
        RAFTFlow(weights=tmp_path / "nope.pth")


def test_raft_loads_local_file_and_runs(random_raft_small_file: Path) -> None:
    teacher = RAFTFlow("small", weights=random_raft_small_file, iterations=2)
    saved = torch.load(random_raft_small_file, weights_only=True)
    loaded = teacher.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[key], loaded[key]) for key in saved)
    generator = np.random.default_rng(0)
    frame_a = generator.integers(0, 256, (130, 170, 3), dtype=np.uint8)
    frame_b = np.roll(frame_a, 2, axis=1)
    flow = teacher(frame_a, frame_b)
    assert flow.shape == (130, 170, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    with pytest.raises(ValueError, match="at least 128 px"):
        teacher(frame_a[:100], frame_b[:100])


def test_raft_finds_hub_cache_file(random_raft_small_file: Path, empty_hub_dir: Path) -> None:
    cached = raft_weights_path("small")
    assert cached.parent == empty_hub_dir / "checkpoints"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(random_raft_small_file.read_bytes())
    teacher = make_teacher_flow("raft_small", allow_download=False)
    assert teacher.name == "raft_small"
