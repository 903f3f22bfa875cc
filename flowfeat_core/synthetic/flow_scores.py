"""Score optical-flow teachers against the benchmark's exact flow (end-point error)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flowfeat_core.synthetic.benchmark import SyntheticSequence
from flowfeat_core.training.teacher_flow import TeacherFlow


def endpoint_error(estimate: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    """Mean Euclidean distance (pixels) between two HxWx2 flows over ``valid`` pixels."""
    if estimate.shape != truth.shape:
        raise ValueError(f"flow shapes differ: {estimate.shape} vs {truth.shape}")
    if not valid.any():
        raise ValueError("no valid pixel to score flow on")
    return float(np.linalg.norm(estimate - truth, axis=-1)[valid].mean())


def score_teacher(teacher: TeacherFlow, sequences: Sequence[SyntheticSequence]) -> dict[str, float]:
    """Mean EPE of ``teacher`` over all consecutive frame pairs on non-occluded pixels, with the
    EPE of predicting zero flow for reference; also the fraction of pixels off by more than 3 px."""
    errors, zero_errors, outliers = [], [], []
    for sequence in sequences:
        for frame, following in zip(sequence.frames[:-1], sequence.frames[1:], strict=True):
            estimate = teacher(frame.rgb, following.rgb)
            errors.append(endpoint_error(estimate, frame.flow, frame.flow_valid))
            zero_errors.append(endpoint_error(np.zeros_like(frame.flow), frame.flow, frame.flow_valid))
            distance = np.linalg.norm(estimate - frame.flow, axis=-1)[frame.flow_valid]
            outliers.append(float((distance > 3.0).mean()))
    if not errors:
        raise ValueError("flow scoring needs sequences of at least 2 frames")
    return {
        "epe": float(np.mean(errors)),
        "outliers_3px": float(np.mean(outliers)),
        "zero_flow_epe": float(np.mean(zero_errors)),
    }
