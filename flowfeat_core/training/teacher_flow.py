"""Optical-flow teachers for distillation, and per-image flow normalisation.

Every teacher maps two RGB uint8 frames (H x W x 3) to the forward flow a -> b as H x W x 2 float32
in pixels (x then y): the content at pixel p of ``frame_a`` appears at p + flow[p] in ``frame_b``.
DIS and Farneback (OpenCV) run on grayscale; RAFT uses torchvision's models with weights from a
local file only (explicit path, or torch.hub's checkpoint cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import optical_flow

NORMALISATION_EPS = 1e-5

# torchvision RAFT's correlation pyramid needs feature maps (1/8 of the frame) of at least 16 px.
RAFT_MIN_SIDE = 128

FlowArray = TypeVar("FlowArray", torch.Tensor, np.ndarray)

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

_RAFT_VARIANTS = {
    "small": (optical_flow.raft_small, optical_flow.Raft_Small_Weights.DEFAULT),
    "large": (optical_flow.raft_large, optical_flow.Raft_Large_Weights.DEFAULT),
}


@runtime_checkable
class TeacherFlow(Protocol):
    """Forward optical flow between two RGB uint8 frames, in pixels (H x W x 2 float32)."""

    name: str

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray: ...


def _check_frames(frame_a: np.ndarray, frame_b: np.ndarray) -> None:
    """Raise a clear error unless both frames are equal-sized H x W x 3 uint8 arrays."""
    for label, frame in (("frame_a", frame_a), ("frame_b", frame_b)):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
            raise ValueError(
                f"{label} must be an H x W x 3 uint8 RGB array, got {_describe(frame)}"
            )
        if frame.shape[2] != 3:
            raise ValueError(f"{label} must have 3 channels (RGB), got shape {frame.shape}")
    if frame_a.shape != frame_b.shape:
        raise ValueError(f"frames differ in size: {frame_a.shape} vs {frame_b.shape}")


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.shape} {value.dtype}"
    return type(value).__name__


def _gray_pair(frame_a: np.ndarray, frame_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _check_frames(frame_a, frame_b)
    return cv2.cvtColor(frame_a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(frame_b, cv2.COLOR_RGB2GRAY)


class DISFlow:
    """OpenCV Dense Inverse Search flow on grayscale; ``preset`` is ultrafast, fast or medium."""

    def __init__(self, preset: str = "medium") -> None:
        if preset not in _DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose from {sorted(_DIS_PRESETS)}")
        self.name = f"dis_{preset}"
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        gray_a, gray_b = _gray_pair(frame_a, frame_b)
        return self._dis.calc(gray_a, gray_b, None).astype(np.float32, copy=False)


class FarnebackFlow:
    """OpenCV Farneback polynomial-expansion flow on grayscale (5-level pyramid, 15 px window)."""

    name = "farneback"

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        gray_a, gray_b = _gray_pair(frame_a, frame_b)
        flow = cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, 0.5, 5, 15, 3, 5, 1.2, 0)
        return flow.astype(np.float32, copy=False)


def raft_weights_path(variant: str) -> Path:
    """Where torch.hub caches the checkpoint torchvision would download for this RAFT variant."""
    url = _RAFT_VARIANTS[variant][1].url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _resolve_raft_weights(variant: str, weights: str | Path | None, allow_download: bool) -> Path:
    """Explicit file, else the hub cache, else a download into the hub cache (if allowed)."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"RAFT weights file not found: {path}")
        return path
    cached = raft_weights_path(variant)
    if cached.is_file():
        return cached
    url = _RAFT_VARIANTS[variant][1].url
    missing = (
        f"RAFT {variant} weights not available offline: download {url} and pass its path as "
        f"weights=..., or place it at {cached}"
    )
    if not allow_download:
        raise FileNotFoundError(missing)
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(cached), progress=False)
    except OSError as error:  # urllib errors (offline, HTTP) are OSErrors
        raise FileNotFoundError(f"{missing} ({error})") from error
    return cached


class RAFTFlow:
    """torchvision RAFT (small or large) from local weights, run on ``device``.

    Frames are scaled to [-1, 1] and replicate-padded to a multiple of 8; the flow of the last of
    ``iterations`` refinement steps is cropped back to the frame size.
    """

    def __init__(
        self,
        variant: str = "small",
        weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        iterations: int = 12,
        allow_download: bool = True,
    ) -> None:
        if variant not in _RAFT_VARIANTS:
            raise ValueError(
                f"unknown RAFT variant {variant!r}; choose from {sorted(_RAFT_VARIANTS)}"
            )
        self.name = f"raft_{variant}"
        self.device = torch.device(device)
        self.iterations = iterations
        path = _resolve_raft_weights(variant, weights, allow_download)
        model = _RAFT_VARIANTS[variant][0](weights=None, progress=False)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model = model.eval().to(self.device)

    def _to_input(self, frame: np.ndarray) -> torch.Tensor:
        image = torch.from_numpy(frame).to(self.device).permute(2, 0, 1)[None].float()
        return image / 127.5 - 1.0

    @torch.inference_mode()
    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        _check_frames(frame_a, frame_b)
        height, width = frame_a.shape[:2]
        if min(height, width) < RAFT_MIN_SIDE:
            raise ValueError(
                f"RAFT needs frames of at least {RAFT_MIN_SIDE} px per side, got {height} x {width}"
            )
        pad = (0, -width % 8, 0, -height % 8)
        image_a = F.pad(self._to_input(frame_a), pad, mode="replicate")
        image_b = F.pad(self._to_input(frame_b), pad, mode="replicate")
        flow = self.model(image_a, image_b, num_flow_updates=self.iterations)[-1]
        flow = flow[0, :, :height, :width].permute(1, 2, 0)
        return flow.float().cpu().numpy()


def normalize_flow(flow: FlowArray) -> FlowArray:
    """Per image and channel: subtract the mean, divide by (std + eps) over the last two axes.

    Layout is channel-first, B x 2 x H x W (or 2 x H x W); the std is the unbiased one, as in the
    reference implementation, and ``NORMALISATION_EPS`` keeps constant flow finite.
    """
    if flow.ndim not in (3, 4) or flow.shape[-3] != 2:
        raise ValueError(f"flow must be [B,] 2 x H x W, got shape {tuple(flow.shape)}")
    if isinstance(flow, torch.Tensor):
        mean = flow.mean(dim=(-2, -1), keepdim=True)
        std = flow.std(dim=(-2, -1), keepdim=True)
        return (flow - mean) / (std + NORMALISATION_EPS)
    as_float = flow.astype(np.float32, copy=False)
    mean = as_float.mean(axis=(-2, -1), keepdims=True)
    std = as_float.std(axis=(-2, -1), keepdims=True, ddof=1)
    return (as_float - mean) / (std + NORMALISATION_EPS)


@dataclass(frozen=True)
class TeacherEntry:
    """One teacher: its factory (keyword options are passed through), a line for ``--help``, and
    whether it needs weights (which ``offline=True`` forbids downloading)."""

    build: Callable[..., TeacherFlow]
    summary: str
    needs_weights: bool = False


#: Teachers by name; the table feeds ``make_teacher_flow`` and the CLIs' ``--teacher`` choices.
TEACHER_FLOWS: dict[str, TeacherEntry] = {
    "dis": TeacherEntry(DISFlow, "OpenCV DIS (default; no weights, fast on a CPU)"),
    "farneback": TeacherEntry(FarnebackFlow, "OpenCV Farneback (no weights)"),
    "raft_small": TeacherEntry(partial(RAFTFlow, "small"), "torchvision RAFT small (weights on disk)", True),
    "raft_large": TeacherEntry(partial(RAFTFlow, "large"), "torchvision RAFT large (weights on disk)", True),
}


def teacher_flow_help() -> str:
    """``name: summary`` for every teacher, for argparse help."""
    return "; ".join(f"{name}: {entry.summary}" for name, entry in TEACHER_FLOWS.items())


def make_teacher_flow(name: str, offline: bool = False, **kwargs: object) -> TeacherFlow:
    """Build the teacher registered as ``name`` (see ``TEACHER_FLOWS``); with ``offline``, a
    teacher whose weights are not on disk fails instead of downloading them."""
    try:
        entry = TEACHER_FLOWS[name]
    except KeyError:
        raise ValueError(f"unknown teacher flow {name!r}; choose from {', '.join(TEACHER_FLOWS)}") from None
    if offline and entry.needs_weights:
        kwargs["allow_download"] = False
    return entry.build(**kwargs)
