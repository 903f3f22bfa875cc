"""Inference API: uint8 images in, dense FlowFeat features out.

Resize policy: the network sees each image resized so that its shorter side equals
``input_short_side`` (aspect kept, both sides rounded to the encoder's size multiple; 0, the
default, means the model's preferred size, ``ModelConfig.input_short_side``), or to an exact
``(height, width)`` when ``input_hw`` is given (the model pads to its size multiple and crops
back, so any exact size works). Features come back at network resolution or,
with ``resolution="input"``, bilinearly resized to the input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from flowfeat_core.inference.auto_backend import AutoRunner, BackendStatus
from flowfeat_core.inference.backends import AUTO, DEFAULT_CACHE
from flowfeat_core.inference.device import Precision, check_precision, select_device
from flowfeat_core.inference.runners import make_runner
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.normalization import PixelNormalizer


def network_size(
    image_hw: tuple[int, int], short_side: int, multiple: int, exact_hw: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The (height, width) the network runs at for an image of ``image_hw`` (see module doc)."""
    if exact_hw is not None:
        return exact_hw
    if short_side <= 0:
        raise ValueError(f"short_side must be positive, got {short_side}")
    height, width = image_hw
    scale = short_side / min(height, width)

    def rounded(side: float) -> int:
        return max(multiple, round(side / multiple) * multiple)

    return rounded(height * scale), rounded(width * scale)


class Predictor:
    """Runs a FlowFeat model on HxWx3 uint8 images (one, or a batch of equal size)."""

    def __init__(
        self,
        model: FlowFeat,
        device: str = "auto",
        precision: Precision = "fp32",
        input_short_side: int = 0,
        input_hw: tuple[int, int] | None = None,
        channels_last: bool = True,
        backend: str = "torch",
        cache_dir: Path = DEFAULT_CACHE,
    ) -> None:
        """``backend``: torch (eager), torch-compile or onnxruntime (see inference/backends.py);
        a non-eager backend is checked against eager fp32 here and refused (BackendError, a
        ValueError) when it disagrees. ``auto`` serves eager at once and swaps in the fastest
        backend when a background build agrees with eager (inference/auto_backend.py). A program
        that runs a Predictor every frame should call
        ``inference.allocator.retain_freed_memory()`` once at start (the nodes and the bench do):
        per-frame maps then reuse retained memory instead of new pages."""
        self.device = select_device(device)
        check_precision(precision, self.device)
        if input_short_side < 0:
            raise ValueError(
                f"input_short_side must be >= 0 (0: the model's preferred size), got {input_short_side}"
            )
        self.precision = precision
        self.input_short_side = int(input_short_side) or model.config.input_short_side
        self.input_hw = tuple(input_hw) if input_hw is not None else None
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.memory_format = memory_format
        self.model = model.eval().to(self.device, memory_format=memory_format)
        self._normalizer = PixelNormalizer(model.config.mean, model.config.std, self.device)
        self.backend = backend
        self._runner = (AutoRunner(self.model, self.device, precision, cache_dir)
                        if backend == AUTO else
                        make_runner(backend, self.model, self.device, precision, cache_dir))

    def backend_status(self) -> BackendStatus:
        """The backend serving now and, under ``auto``, what it is building or decided."""
        if isinstance(self._runner, AutoRunner):
            return self._runner.status()
        return BackendStatus(self.backend, self.precision, "set by the backend parameter")

    @property
    def fdim(self) -> int:
        """Channels of the dense features."""
        return self.model.config.fdim

    def network_size(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """(height, width) the network runs at for images of ``image_hw``."""
        return network_size(image_hw, self.input_short_side, self.model.size_multiple, self.input_hw)

    def preprocess(self, images: np.ndarray | Sequence[np.ndarray], color: str = "rgb") -> torch.Tensor:
        """Resize, convert to RGB and normalise into a B x 3 x H x W tensor on the device."""
        batch = _as_batch(images)
        height, width = batch[0].shape[:2]
        net_h, net_w = self.network_size((height, width))
        resized = [_resize(image, net_w, net_h) for image in batch]
        array = np.stack(resized)
        tensor = torch.from_numpy(array).to(self.device, non_blocking=True)
        tensor = tensor.permute(0, 3, 1, 2).float()
        if color.lower() == "bgr":
            tensor = tensor.flip(1)
        elif color.lower() != "rgb":
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        tensor = self._normalizer.normalize(tensor)
        return tensor.contiguous(memory_format=self.memory_format)

    def run(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model forward on a preprocessed batch (by the chosen backend); returns float32
        (encoder, dense) features."""
        return self._runner(tensor)

    def predict(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        color: str = "rgb",
        resolution: Literal["network", "input"] = "network",
        as_numpy: bool = False,
    ) -> torch.Tensor | np.ndarray:
        """Dense features for ``images``.

        Returns a float32 torch tensor B x C x H x W, or with ``as_numpy`` a contiguous numpy
        array B x H x W x C (the layout of a ``32FC<C>`` ROS image). A single HxWx3 image gives
        a batch of one.
        """
        batch = _as_batch(images)
        _, dense = self.run(self.preprocess(batch, color))
        if resolution == "input":
            dense = F.interpolate(dense, size=batch[0].shape[:2], mode="bilinear", align_corners=False)
        elif resolution != "network":
            raise ValueError(f"resolution must be 'network' or 'input', got {resolution!r}")
        if as_numpy:
            return dense.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return dense


def _as_batch(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    batch = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
    if not batch:
        raise ValueError("no images given")
    shape = batch[0].shape
    for image in batch:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"images must be HxWx3 uint8, got {image.shape} {image.dtype}")
        if image.shape != shape:
            raise ValueError(f"images in a batch must share one size, got {shape} and {image.shape}")
        if min(image.shape[:2]) == 0:
            raise ValueError("empty image")
    return batch


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
