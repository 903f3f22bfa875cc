"""Depth, segmentation and boundary metrics (accumulated over images)."""

from __future__ import annotations

import math

import cv2
import numpy as np

IGNORE_LABEL = 255


def median_scaled(prediction: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``prediction`` scaled so that its median matches the target's on ``valid`` pixels."""
    return prediction * (np.median(target[valid]) / max(float(np.median(prediction[valid])), 1e-8))


class DepthMetrics:
    """AbsRel, RMSE (metres or target units) and delta < 1.25, averaged per image."""

    def __init__(self) -> None:
        self._rows: list[tuple[float, float, float]] = []

    def add(self, prediction: np.ndarray, target: np.ndarray, valid: np.ndarray) -> None:
        """One image; ``valid`` marks pixels with a usable target depth."""
        if prediction.shape != target.shape:
            raise ValueError(f"depth prediction {prediction.shape} and target {target.shape} differ")
        if not valid.any():
            return
        pred, true = np.maximum(prediction[valid], 1e-6), target[valid]
        ratio = np.maximum(pred / true, true / pred)
        self._rows.append(
            (
                float(np.mean(np.abs(pred - true) / true)),
                float(np.sqrt(np.mean((pred - true) ** 2))),
                float(np.mean(ratio < 1.25)),
            )
        )

    def result(self) -> dict[str, float]:
        if not self._rows:
            raise ValueError("no image with valid depth was scored")
        abs_rel, rmse, delta = np.mean(self._rows, axis=0)
        return {"abs_rel": float(abs_rel), "rmse": float(rmse), "delta1": float(delta)}


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (ignored pixels excluded)."""
    boundary = np.zeros(labels.shape, bool)
    for changed in (labels[:, 1:] != labels[:, :-1], labels[1:, :] != labels[:-1, :]):
        if changed.shape[1] != labels.shape[1]:
            boundary[:, :-1] |= changed
        else:
            boundary[:-1, :] |= changed
    return boundary & (labels != IGNORE_LABEL)


def boundary_radius(height: int, width: int) -> int:
    """The DAVIS boundary tolerance: 0.8 % of the image diagonal, at least one pixel."""
    return max(1, math.ceil(0.008 * math.hypot(height, width)))


def boundary_counts(predicted: np.ndarray, truth: np.ndarray, radius: int) -> tuple[int, int, int, int]:
    """(matched predicted, all predicted, matched true, all true) boundary pixels within ``radius``."""
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    near_truth = cv2.dilate(truth.astype(np.uint8), disk) > 0
    near_predicted = cv2.dilate(predicted.astype(np.uint8), disk) > 0
    return (
        int((predicted & near_truth).sum()),
        int(predicted.sum()),
        int((truth & near_predicted).sum()),
        int(truth.sum()),
    )


def f_measure(matched_pred: int, total_pred: int, matched_true: int, total_true: int) -> float:
    """Boundary F: 1 when both boundaries are empty, 0 when exactly one is."""
    if total_pred == 0 and total_true == 0:
        return 1.0
    if total_pred == 0 or total_true == 0:
        return 0.0
    precision, recall = matched_pred / total_pred, matched_true / total_true
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


class SegmentationMetrics:
    """mIoU (over classes present in prediction or truth), pixel accuracy and boundary F-score."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), np.int64)
        self._boundary = np.zeros(4, np.int64)

    def add(self, prediction: np.ndarray, target: np.ndarray) -> None:
        """One image of class ids; target pixels equal to 255 are ignored."""
        if prediction.shape != target.shape:
            raise ValueError(f"label prediction {prediction.shape} and target {target.shape} differ")
        valid = target != IGNORE_LABEL
        if (target[valid] >= self.num_classes).any():
            raise ValueError(f"target has class ids >= {self.num_classes} (other than {IGNORE_LABEL})")
        index = target[valid].astype(np.int64) * self.num_classes + prediction[valid].astype(np.int64)
        self.confusion += np.bincount(index, minlength=self.num_classes**2).reshape(self.confusion.shape)
        masked_prediction = np.where(valid, prediction, IGNORE_LABEL)
        radius = boundary_radius(*target.shape)
        self._boundary += boundary_counts(
            label_boundaries(masked_prediction), label_boundaries(target), radius
        )

    def result(self) -> dict[str, float]:
        total = self.confusion.sum()
        if total == 0:
            raise ValueError("no labelled pixel was scored")
        true_positive = np.diag(self.confusion)
        union = self.confusion.sum(0) + self.confusion.sum(1) - true_positive
        present = union > 0
        return {
            "miou": float(np.mean(true_positive[present] / union[present])),
            "pixel_accuracy": float(true_positive.sum() / total),
            "boundary_f": f_measure(*(int(count) for count in self._boundary)),
        }
