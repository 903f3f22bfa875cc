"""Pictures for TensorBoard: optical flow as colour, features as PCA colour."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from flowfeat_core.inference.pca import FeaturePCA


def flow_to_rgb(flow: torch.Tensor, max_magnitude: float | None = None) -> np.ndarray:
    """2 x H x W flow -> H x W x 3 uint8 (hue = direction, value = magnitude)."""
    u, v = flow[0].float().cpu().numpy(), flow[1].float().cpu().numpy()
    magnitude, angle = cv2.cartToPolar(u, v, angleInDegrees=True)
    scale = max_magnitude or float(np.percentile(magnitude, 99)) or 1.0
    hsv = np.zeros((*u.shape, 3), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def features_to_rgb(features: torch.Tensor) -> np.ndarray:
    """C x H x W features -> H x W x 3 uint8 through a PCA fitted on them."""
    batch = features[None].float().cpu()
    return FeaturePCA.fit(batch, n_components=3).colorize(batch)[0]
