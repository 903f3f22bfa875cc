"""One step along a dense flow field with the forward-backward consistency test.

Both the scene-cut detector (:mod:`flowfeat_core.data.sequences`) and the real-image yardstick's
correspondence truth (:mod:`flowfeat_core.probes.real_yardstick`) trust a flow vector only where
the flow back returns to the start (Sundaram, Brox and Keutzer 2010): a scene cut or an
occlusion breaks that almost everywhere, camera motion does not.
"""

from __future__ import annotations

import cv2
import numpy as np


def sample(field: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of an H x W x K float map at float positions (border replicated)."""
    return cv2.remap(field, xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def consistent_step(
    there: np.ndarray, back: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move positions (xs, ys) along flow ``there`` (frame a -> b); return the new positions and
    whether flow ``back`` (b -> a) at them returns within Sundaram et al.'s tolerance
    ``|f + g|^2 <= 0.01 (|f|^2 + |g|^2) + 0.5`` and they lie inside the image."""
    height, width = there.shape[:2]
    step = sample(there, xs, ys)
    new_xs, new_ys = xs + step[..., 0], ys + step[..., 1]
    returned = sample(back, new_xs, new_ys)
    mismatch = ((step + returned) ** 2).sum(-1)
    tolerance = 0.01 * ((step**2).sum(-1) + (returned**2).sum(-1)) + 0.5
    inside = (new_xs >= 0) & (new_xs <= width - 1) & (new_ys >= 0) & (new_ys <= height - 1)
    return new_xs, new_ys, (mismatch <= tolerance) & inside
