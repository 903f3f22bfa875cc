"""Loading the authors' FlowFeat checkpoints (``.pth`` state dicts) with strict key checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

_WRAPPER_KEYS = ("state_dict", "model")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded into the requested model."""


def read_torch_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` with ``weights_only=True`` (no arbitrary unpickling) and unwrap
    ``{"state_dict": ...}`` / ``{"model": ...}`` containers."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first_line}") from error
    for key in _WRAPPER_KEYS:
        if isinstance(data, Mapping) and key in data and isinstance(data[key], Mapping):
            data = data[key]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict of tensors")
    return dict(data)


def check_state_dict(
    source: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], origin: str
) -> None:
    """Raise :class:`CheckpointError` listing missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(source))
    unexpected = sorted(set(source) - set(expected))
    mis_shaped = [
        f"{key} {tuple(source[key].shape)} != {tuple(expected[key].shape)}"
        for key in expected
        if key in source and source[key].shape != expected[key].shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
        if items:
            shown = ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")
            problems.append(f"{len(items)} {label}: {shown}")
    if problems:
        raise CheckpointError(f"{origin} does not match the model: " + "; ".join(problems))
