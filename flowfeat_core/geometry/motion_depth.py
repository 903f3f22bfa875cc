"""Depth labels from a moving camera's own video: what a depth probe can learn from without a
depth sensor.

For a frame, each partner frame ``gap`` frames before and after gives a two-view depth map:
teacher flow both ways (kept where forward-backward consistent), the relative pose by the
five-point algorithm (least-median sampling), and per-pixel triangulation (two_view.py), which
drops pixels off their epipolar line (independently moving objects), with too little parallax,
or behind a camera.
The pairs are fused by the per-pixel median, and a pixel whose pairs disagree is dropped.
Scale: with camera poses (odometry, or /tf to the camera frame) each pair's motion is known and
the labels are metric (the flow must fit that motion, or the odometry is reported as not
matching); without them each pair is aligned to the first, and the labels are relative
(median 1), for a scale-invariant loss.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from flowfeat_core.data.flow_consistency import consistent_step
from flowfeat_core.geometry.two_view import (
    CameraPose,
    RelativePose,
    TwoViewError,
    pixel_grid,
    relative_pose,
    triangulate,
)
from flowfeat_core.training.teacher_flow import TeacherFlow

#: How a pair whose flow contradicts the odometry's camera motion is reported.
ODOMETRY_MISMATCH = "odometry mismatch"


class MotionDepthError(ValueError):
    """No depth labels for this frame; the message says why in one line."""


class OdometryMismatchError(MotionDepthError):
    """The recorded camera poses contradict the frames: no frame of the recording can be
    trusted, unlike the other reasons, which concern one frame."""


@dataclass(frozen=True)
class MotionDepthConfig:
    """``gaps``: frame distances of the partner frames (each before and after); a pixel's label
    needs ``min_pairs`` estimates whose spread (median absolute deviation / median) is at most
    ``max_spread``; a pair's pose (estimated or from odometry) must put ``min_inlier_share`` of
    the consistent flow within ``max_epipolar_px`` of its epipolar lines. Odometry that fits
    less is still trusted while it fits at least ``min_odometry_agreement`` of what the flow's
    own best rigid motion fits: independently moving objects lower both (on procedural bags the
    exact odometry fitted 0.22-0.81 of the flow, 0.4-1.0 times the estimated motion's share;
    odometry turned by 30 degrees or two frames late, 0.4 times or less, typically 0.2)."""

    gaps: tuple[int, ...] = (2, 4, 6)
    max_epipolar_px: float = 1.0
    min_parallax_deg: float = 0.5
    min_inlier_share: float = 0.5
    min_odometry_agreement: float = 0.5
    min_pairs: int = 2
    max_spread: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class MotionDepth:
    """Depth labels of one frame: ``depth`` (NaN: no label), metres when ``metric``, else
    relative (median 1); ``pairs`` used and, for the others, why not."""

    depth: np.ndarray
    metric: bool
    pairs: int
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """Share of pixels with a label."""
        return float(np.isfinite(self.depth).mean())


def frame_depth(frames: Sequence[np.ndarray], index: int, intrinsics: np.ndarray,
                teacher: TeacherFlow, config: MotionDepthConfig = MotionDepthConfig(),
                poses: Sequence[CameraPose] | None = None) -> MotionDepth:
    """Depth labels of ``frames[index]`` (RGB uint8) from its partner frames. With ``poses`` (one
    camera pose per frame, from odometry or /tf) every pair's motion is known, metric, and only
    checked against the frames; without, it is estimated (essential matrix) and the labels are
    relative. MotionDepthError when no pair gives depth (the reason of each), or when the poses
    contradict the frames."""
    rng = np.random.default_rng([config.seed, index])
    estimates: dict[int, np.ndarray] = {}
    skipped: dict[int, str] = {}
    for partner in _partners(index, len(frames), config.gaps):
        known = None if poses is None else poses[index].relative(poses[partner])
        if known is not None and known[1] <= 1e-6:
            skipped[partner] = "the camera did not move (odometry)"
            continue
        try:
            estimates[partner] = _pair_depth(frames[index], frames[partner], intrinsics, teacher,
                                             config, known, rng)
        except TwoViewError as error:
            skipped[partner] = str(error)
    mismatched = [why for why in skipped.values() if why.startswith(ODOMETRY_MISMATCH)]
    if mismatched and len(mismatched) >= len(estimates):
        raise OdometryMismatchError(f"frame {index}: the odometry does not match the frames: "
                               f"{mismatched[0]} (check the odometry topic, its stamps and the "
                               "camera frame)")
    if not estimates:
        reasons = "; ".join(f"frame {p}: {why}" for p, why in skipped.items()) or "no partner"
        raise MotionDepthError(f"frame {index}: no depth from motion ({reasons})")
    metric = poses is not None
    if not metric:
        estimates = _aligned(estimates)
    depth = _fuse(list(estimates.values()), config)
    if not metric and np.isfinite(depth).any():
        depth = depth / np.nanmedian(depth)
    return MotionDepth(depth, metric, len(estimates), skipped)


def _partners(index: int, count: int, gaps: Sequence[int]) -> list[int]:
    return [index + sign * gap for gap in gaps for sign in (1, -1) if 0 <= index + sign * gap < count]


def _pair_depth(frame_a: np.ndarray, frame_b: np.ndarray, intrinsics: np.ndarray,
                teacher: TeacherFlow, config: MotionDepthConfig,
                known: tuple[RelativePose, float] | None, rng: np.random.Generator) -> np.ndarray:
    """Depth of frame a from frame b: metric with the ``known`` (pose, baseline), else in units
    of the baseline, with the pose estimated from the flow."""
    there, back = teacher(frame_a, frame_b), teacher(frame_b, frame_a)
    xs, ys = pixel_grid(*frame_a.shape[:2])
    new_xs, new_ys, valid = consistent_step(there, back, xs, ys)
    flow = np.stack([new_xs - xs, new_ys - ys], axis=-1)
    moved = np.hypot(flow[..., 0], flow[..., 1])[valid]
    if moved.size == 0:
        raise TwoViewError("no forward-backward consistent flow (a scene cut?)")
    if np.median(moved) < 0.5:
        raise TwoViewError(f"median flow {np.median(moved):.2f} px: a static camera gives no "
                           "parallax")
    if known is None:
        pose = _flow_pose(xs, ys, new_xs, new_ys, valid, intrinsics, config, rng)
        baseline = 1.0
    else:
        pose, baseline = known
    result = triangulate(flow, valid, intrinsics, pose, baseline, config.max_epipolar_px,
                         config.min_parallax_deg)
    fitting = int(result.behind.sum()) + int(np.isfinite(result.depth).sum())
    if known is not None and result.behind.sum() > 0.5 * max(1, fitting):
        raise TwoViewError(f"{ODOMETRY_MISMATCH}: its camera motion puts "
                           f"{result.behind.sum() / max(1, fitting):.0%} of the scene behind the "
                           "camera (reversed axes, or stamps in the wrong order)")
    if result.fit_share < config.min_inlier_share:
        if known is None:
            raise TwoViewError(f"only {result.fit_share:.0%} of the consistent flow fits one "
                               "camera motion")
        best = _best_rigid_fit(flow, xs, ys, new_xs, new_ys, valid, intrinsics, config, rng)
        if result.fit_share < config.min_odometry_agreement * best:
            raise TwoViewError(f"{ODOMETRY_MISMATCH}: only {result.fit_share:.0%} of the "
                               "consistent flow fits the camera motion it gives, "
                               f"{best:.0%} fits the flow's own best rigid motion")
    if not np.isfinite(result.depth).any():
        raise TwoViewError(f"no pixel with {config.min_parallax_deg} degrees of parallax (the "
                           "camera barely moved, or only turned)")
    return result.depth


def _flow_pose(xs: np.ndarray, ys: np.ndarray, new_xs: np.ndarray, new_ys: np.ndarray,
               valid: np.ndarray, intrinsics: np.ndarray, config: MotionDepthConfig,
               rng: np.random.Generator) -> RelativePose:
    """The camera motion estimated from the consistent flow (pixel -> where it went)."""
    points_a = np.stack([xs[valid], ys[valid]], axis=1)
    points_b = np.stack([new_xs[valid], new_ys[valid]], axis=1)
    return relative_pose(points_a, points_b, intrinsics, config.max_epipolar_px, rng)


def _best_rigid_fit(flow: np.ndarray, xs: np.ndarray, ys: np.ndarray, new_xs: np.ndarray,
                    new_ys: np.ndarray, valid: np.ndarray, intrinsics: np.ndarray,
                    config: MotionDepthConfig, rng: np.random.Generator) -> float:
    """Share of the consistent flow that the camera motion estimated from it fits: what any
    correct odometry should come close to."""
    try:
        pose = _flow_pose(xs, ys, new_xs, new_ys, valid, intrinsics, config, rng)
    except TwoViewError:
        return 0.0
    return triangulate(flow, valid, intrinsics, pose, 1.0, config.max_epipolar_px,
                       config.min_parallax_deg).fit_share


def _aligned(estimates: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Each pair's depth (in units of its own baseline) scaled to the first pair's units, by the
    median ratio over the pixels both have."""
    items = list(estimates.items())
    reference = items[0][1]
    aligned = {items[0][0]: reference}
    for partner, depth in items[1:]:
        both = np.isfinite(reference) & np.isfinite(depth)
        if both.sum() >= 16:
            aligned[partner] = depth * float(np.median(reference[both] / depth[both]))
    return aligned


def _fuse(depths: list[np.ndarray], config: MotionDepthConfig) -> np.ndarray:
    stack = np.stack(depths)
    count = np.isfinite(stack).sum(0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: no label
        median = np.nanmedian(stack, axis=0)
        spread = np.nanmedian(np.abs(stack - median), axis=0) / median
    needed = min(config.min_pairs, len(depths))
    keep = (count >= needed) & ((count < 2) | (spread <= config.max_spread))
    return np.where(keep, median, np.nan).astype(np.float32)
