"""How closely a fast path must agree with eager fp32 PyTorch, measured one way everywhere
(backends when they load, the ONNX export's verification, folded batch norms): tolerances per
precision, the precisions an ONNX graph can run, the error measure and the input it is checked
on."""

from __future__ import annotations

import numpy as np
import torch

#: Largest relative error (see :func:`relative_error`) accepted per precision.
TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "fp16": 5e-2}
#: Precisions an exported ONNX graph runs (ONNX Runtime has no bf16 CPU kernels for it).
ONNX_PRECISIONS = ("fp32", "fp16")


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Max absolute error over the max absolute reference value (scale-free, 0 = identical)."""
    got = np.asarray(got, dtype=np.float32)
    want = np.asarray(want, dtype=np.float32)
    return float(np.abs(got - want).max()) / max(float(np.abs(want).max()), 1e-12)


def check_input(size_multiple: int, device: torch.device) -> torch.Tensor:
    """The fixed random image (1 x 3 x 4 size_multiple square) a fast path is checked on."""
    side = 4 * size_multiple
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
