"""Camera nuisances for the training corpus: exposure and white-balance drift, blur, sensor
noise and JPEG artefacts, applied to rendered colour only (labels and exact flow are untouched).

Real robot video is never photometrically constant between frames, so a teacher flow and a
student trained only on perfect renders would meet conditions at deployment they never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from flowfeat_core.synthetic.render import RenderedFrame


def _blur(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Defocus (Gaussian) or a short linear motion blur, or neither."""
    kind = rng.choice(("none", "defocus", "motion"), p=(0.5, 0.3, 0.2))
    if kind == "defocus":
        return cv2.GaussianBlur(rgb, (0, 0), float(rng.uniform(0.4, 1.3)))
    if kind == "motion":
        length = int(rng.integers(3, 6))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rotation = cv2.getRotationMatrix2D(
            ((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0
        )
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        return cv2.filter2D(rgb, -1, kernel / max(float(kernel.sum()), 1e-6))
    return rgb


def _jpeg(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    quality = int(rng.integers(40, 95))
    ok, encoded = cv2.imencode(".jpg", rgb, (cv2.IMWRITE_JPEG_QUALITY, quality))
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else rgb


def degrade_sequence(rng: np.random.Generator, frames: Sequence[RenderedFrame]) -> list[RenderedFrame]:
    """The frames with per-sequence camera response and per-frame drift, blur, noise and JPEG."""
    gain = rng.uniform(0.7, 1.3)
    white_balance = rng.uniform(0.85, 1.15, size=3)
    gamma = rng.uniform(0.8, 1.25)
    noise_sigma = rng.uniform(0.5, 4.0)
    jpeg_probability = rng.uniform(0.0, 0.6)
    degraded = []
    for frame in frames:
        gain *= rng.uniform(0.96, 1.04)  # auto-exposure hunting
        linear = (frame.rgb.astype(np.float32) / 255.0) ** gamma * gain * white_balance
        rgb = np.clip(linear ** (1.0 / gamma) * 255.0, 0, 255).astype(np.uint8)
        rgb = _blur(rng, rgb).astype(np.float32)
        rgb += rng.normal(0.0, noise_sigma, size=rgb.shape).astype(np.float32)
        rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        if rng.random() < jpeg_probability:
            rgb = _jpeg(rng, rgb)
        degraded.append(replace(frame, rgb=rgb))
    return degraded
