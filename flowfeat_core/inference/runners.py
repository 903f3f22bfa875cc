"""Building a backend's runner by name (backends.py holds the eager, torch-compile and ONNX
Runtime runners, aot_inductor.py the ahead-of-time packages); ``auto`` is auto_backend.py."""

from __future__ import annotations

from pathlib import Path

import torch

from flowfeat_core.error_text import first_line
from flowfeat_core.inference.aot_inductor import aot_inductor_runner
from flowfeat_core.inference.backends import (
    BACKEND_CHOICES,
    BACKENDS,
    DEFAULT_CACHE,
    BackendError,
    Runner,
    check_against_eager,
    onnxruntime_runner,
    torch_runner,
)
from flowfeat_core.inference.device import Precision
from flowfeat_core.models.flowfeat import FlowFeat


def make_runner(backend: str, model: FlowFeat, device: torch.device, precision: Precision,
                cache_dir: Path = DEFAULT_CACHE) -> Runner:
    """The runner of ``backend`` (one of BACKENDS), checked against eager fp32 unless it is eager
    itself."""
    if backend == "torch":
        return torch_runner(model, device, precision)
    runner = build_runner(backend, model, device, precision, cache_dir)
    if backend != "aot-inductor":  # it checks each package on its first input: no extra compile
        check_against_eager(backend, runner, model, device, precision)
    return runner


def build_runner(backend: str, model: FlowFeat, device: torch.device, precision: Precision,
                 cache_dir: Path = DEFAULT_CACHE, niceness: int = 0) -> Runner:
    """The runner of ``backend``, not yet checked: torch-compile compiles on its first call at each
    size, and the aot-inductor and onnxruntime runners check each new size themselves.
    ``niceness``: added to aot-inductor's compiler processes (``auto`` builds in the
    background)."""
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {list(BACKEND_CHOICES)}, got {backend!r}")
    try:
        if backend == "onnxruntime":
            return onnxruntime_runner(model, device, precision, cache_dir)
        if backend == "aot-inductor":
            return aot_inductor_runner(model, device, precision, niceness)
        return torch_runner(model, device, precision, compile_model=backend == "torch-compile")
    except BackendError:
        raise
    except Exception as error:  # compilers and exporters fail in many ways: refuse, say how
        raise BackendError(f"{backend} backend could not be built: {type(error).__name__}: "
                           f"{first_line(error)}") from error
