"""Where and how inference runs: device, numeric precision and CPU threads, and the one
description of the machine that benchmarks and trained weights record."""

from __future__ import annotations

import os
import platform
from typing import Literal, get_args

import torch

#: Precisions a Predictor (and the perception node) accept, with the autocast dtype of each.
Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
AUTOCAST_DTYPES: dict[Precision, torch.dtype | None] = {
    "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16
}


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_inference_threads(requested: int = 0) -> int:
    """Torch threads for CPU inference: ``requested`` when > 0, else one less than the available
    cores (at least 1). Leaving a core free matters in a ROS process: when message callbacks
    compete with every inference thread, torch's threads wait on each other and one inference
    can take ten times longer (measured on a 2-core machine)."""
    if requested < 0:
        raise ValueError(f"requested threads must be >= 0, got {requested}")
    return requested or max(1, available_cores() - 1)


def select_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; a CUDA device without CUDA or an unknown
    device type is a ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    unsupported = ValueError(f"device {device!r} is not supported (use auto, cpu or cuda[:N])")
    try:
        resolved = torch.device(device)
    except RuntimeError:  # torch's message lists its twenty device types, not ours
        raise unsupported from None
    if resolved.type not in ("cpu", "cuda"):
        raise unsupported
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


def check_precision(precision: str, device: torch.device) -> None:
    """ValueError unless ``precision`` is known and runs on ``device`` (fp16 needs CUDA)."""
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware: AVX512-BF16 or AMX on the CPU (elsewhere
    bf16 is emulated and measured 6x slower than fp32), bf16 support on CUDA."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = [getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_machine(device: torch.device) -> dict[str, object]:
    """What a measurement or a training run ran on (stored with trained weights)."""
    described: dict[str, object] = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        described["gpu"] = torch.cuda.get_device_name(device)
    return described


def machine_summary(device: torch.device) -> str:
    """:func:`describe_machine` as one line for benchmark reports."""
    facts = describe_machine(device)
    processor = facts.get("gpu", facts["cpu"])
    return (f"{processor}; {facts['torch_threads']} torch threads on {facts['cpu_count']} cores; "
            f"torch {facts['torch']}; Python {facts['python']}")
