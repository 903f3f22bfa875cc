"""``backend="auto"``: fast by default without a cold start.

Eager PyTorch serves from the first frame. The first frame of each new input shape starts a build
of the fastest backend this machine supports on a background thread, its compiler in a child
process at the lowest CPU priority (an ahead-of-time package of the default model takes one to two
minutes on a 2-core CPU; a package cached under ``$FLOWFEAT_HOME`` loads in milliseconds); the
build is checked against eager fp32 on that frame itself, and only then serves that shape. A build
that fails or disagrees leaves eager serving, with the reason in ``status()``; so does a fast
backend that fails while serving.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from flowfeat_core.error_text import first_line
from flowfeat_core.inference.backends import (
    DEFAULT_CACHE,
    BackendError,
    Runner,
    compare_with_eager,
    torch_runner,
)
from flowfeat_core.inference.device import Precision, native_bf16
from flowfeat_core.inference.numerics import ONNX_PRECISIONS
from flowfeat_core.inference.runners import build_runner
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.registry import encoder_entry

EAGER = "torch"
#: How ``BackendStatus.detail`` ends once auto has given up on its fast backend (benchmarks wait
#: for this or for the fast backend).
EAGER_FALLBACK = "eager PyTorch serves"
#: Nice value of the build thread and its compiler process: the stream keeps the CPU it needs.
BUILD_NICENESS = 19


@dataclass(frozen=True)
class BackendPlan:
    """The backend and precision ``auto`` builds on this machine, and why those."""

    backend: str
    precision: Precision
    reason: str


@dataclass(frozen=True)
class BackendStatus:
    """Which backend serves now, at which precision, and what ``auto`` is doing or decided."""

    serving: str
    precision: str
    detail: str


def fastest_backend(device: torch.device, precision: Precision, encoder: str) -> BackendPlan:
    """TensorRT through ONNX Runtime on CUDA when its provider is installed (and the precision is
    one it runs), else inductor's ahead-of-time package (Triton kernels on CUDA, C++ on the CPU;
    compiled out of process, so the stream keeps its pace, and loaded from the cache at once
    after a restart).
    fp32 becomes bf16 where the hardware computes bf16 natively and the encoder's registry entry
    says bf16 was measured harmless for it (``EncoderEntry.auto_bf16``)."""
    if device.type == "cuda":
        try:
            import onnxruntime

            providers = onnxruntime.get_available_providers()
        except ImportError:
            providers = []
        if "TensorrtExecutionProvider" in providers and precision in ONNX_PRECISIONS:
            return BackendPlan("onnxruntime", precision,
                               "CUDA with ONNX Runtime's TensorRT provider")
        backend, reason = "aot-inductor", "CUDA without ONNX Runtime's TensorRT provider"
    else:
        backend, reason = "aot-inductor", "CPU: inductor's C++ kernels"
    if precision == "fp32" and encoder_entry(encoder).auto_bf16 and native_bf16(device):
        return BackendPlan(backend, "bf16", f"{reason}; bf16 as the model's registry entry "
                                            "allows, computed natively here")
    return BackendPlan(backend, precision, reason)


def _lower_this_thread_priority() -> None:
    """Lowest CPU priority for the calling thread (and the compiler processes it starts)."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICENESS)


class AutoRunner:
    """A Runner (see backends.py) that starts eager and swaps in ``fastest_backend`` per input
    shape once a background build of it agrees with eager on a frame of that shape."""

    def __init__(self, model: FlowFeat, device: torch.device, precision: Precision,
                 cache_dir: Path = DEFAULT_CACHE, plan: BackendPlan | None = None) -> None:
        self._model = model
        self._device = device
        self._precision = precision
        self._cache_dir = cache_dir
        self.plan = plan or fastest_backend(device, precision, model.config.encoder)
        self._eager = torch_runner(model, device, precision)
        self._fast: Runner | None = None  # built on the first build
        self._ready: set[tuple[int, ...]] = set()  # shapes the fast backend serves
        self._started: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()  # one build at a time
        self._refused = ""
        self._status = BackendStatus(EAGER, precision, f"eager until {self._fast_name} is "
                                                       f"built ({self.plan.reason})")

    @property
    def _fast_name(self) -> str:
        return f"{self.plan.backend} {self.plan.precision}"

    def status(self) -> BackendStatus:
        """The serving backend and what auto is doing or decided (for logs and diagnostics)."""
        return self._status

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = tuple(images.shape)
        fast = self._fast
        if shape in self._ready and fast is not None:
            try:
                return fast(images)
            except Exception as error:  # a verified backend failing later: eager takes over
                self._refuse(f"{self.plan.backend} failed while serving {_size(shape)} "
                             f"({type(error).__name__}: {first_line(error)})")
        else:
            self._start_build(shape, images)
        return self._eager(images)

    def _start_build(self, shape: tuple[int, ...], images: torch.Tensor) -> None:
        with self._lock:
            if self._refused or shape in self._started:
                return
            self._started.add(shape)
            self._status = BackendStatus(self._status.serving, self._status.precision,
                                         f"building {self._fast_name} for {_size(shape)} in "
                                         f"the background ({self.plan.reason}); eager serves "
                                         "this size meanwhile")
        sample = images.detach().clone()
        threading.Thread(target=self._build, args=(shape, sample), daemon=True,
                         name="flowfeat-backend-build").start()

    def _build(self, shape: tuple[int, ...], sample: torch.Tensor) -> None:
        """Build (or compile for a new shape), check against eager on ``sample``, then serve.
        A daemon thread: a node that stops mid-build exits without waiting for the compiler."""
        _lower_this_thread_priority()
        with self._build_lock:
            start = time.monotonic()
            try:
                if self._fast is None:
                    self._fast = build_runner(self.plan.backend, self._model, self._device,
                                              self.plan.precision, self._cache_dir,
                                              niceness=BUILD_NICENESS)
                got = self._fast(sample)
                error = compare_with_eager(self.plan.backend, got, self._model, sample,
                                           self.plan.precision)
            except BackendError as refusal:
                self._refuse(str(refusal))
                return
            except Exception as failure:  # compilers fail in many ways: eager keeps serving
                self._refuse(f"{self.plan.backend} could not be built for {_size(shape)} "
                             f"({type(failure).__name__}: {first_line(failure)})")
                return
            with self._lock:
                if self._refused:
                    return
                self._ready.add(shape)
                self._status = BackendStatus(
                    self.plan.backend, self.plan.precision,
                    f"{self._fast_name} serves {_size(shape)}: built in "
                    f"{time.monotonic() - start:.1f} s, largest relative error against eager "
                    f"fp32 {error:.1e} ({self.plan.reason})")

    def _refuse(self, reason: str) -> None:
        with self._lock:
            self._refused = reason
            self._ready.clear()
            self._status = BackendStatus(EAGER, self._precision, f"{reason}; {EAGER_FALLBACK}")


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[-2]}x{shape[-1]}" + (f" (batch {shape[0]})" if shape[0] != 1 else "")
