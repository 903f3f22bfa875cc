"""DAVIS J&F: region IoU and boundary F-measure of propagated object masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flowfeat_core.probes.metrics import boundary_counts, boundary_radius, f_measure


def jf_scores(
    predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], object_ids: Sequence[int]
) -> dict[str, float]:
    """DAVIS J (region IoU) and F (boundary F-measure) per object, averaged over frames after the
    first and then over objects; ``jf`` is their mean. Both empty counts as a perfect frame."""
    if len(predicted) != len(truth) or len(truth) < 2:
        raise ValueError("need the same number (>= 2) of predicted and true masks")
    if not object_ids:
        raise ValueError("no object to score")
    j_means, f_means = [], []
    for object_id in object_ids:
        j_values, f_values = [], []
        for pred_labels, true_labels in zip(predicted[1:], truth[1:], strict=True):
            pred, true = pred_labels == object_id, true_labels == object_id
            union = (pred | true).sum()
            j_values.append(1.0 if union == 0 else float((pred & true).sum() / union))
            radius = boundary_radius(*true.shape)
            f_values.append(f_measure(*boundary_counts(_mask_boundary(pred), _mask_boundary(true), radius)))
        j_means.append(np.mean(j_values))
        f_means.append(np.mean(f_values))
    j_score, f_score = float(np.mean(j_means)), float(np.mean(f_means))
    return {"j": j_score, "f": f_score, "jf": (j_score + f_score) / 2}


def _mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior
