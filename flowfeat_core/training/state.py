"""Resumable training state in one safetensors file (no pickle): decoder, EMA decoder,
optimizer moments, and counters/config as JSON metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.process.atomic_io import save_safetensors


@dataclass
class TrainingState:
    """What a resumed run needs besides the data."""

    decoder: dict[str, torch.Tensor]
    ema_decoder: dict[str, torch.Tensor]
    optimizer: dict
    step: int
    epoch: int
    config: dict
    train_seconds: float = 0.0


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], list]:
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, state["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}


def save_training_state(path: Path, state: TrainingState) -> None:
    """Write ``state`` atomically."""
    optimizer_tensors, groups = _flatten_optimizer(state.optimizer)
    tensors = {f"decoder.{k}": v for k, v in state.decoder.items()}
    tensors |= {f"ema.{k}": v for k, v in state.ema_decoder.items()}
    tensors |= optimizer_tensors
    metadata = {
        "step": str(state.step),
        "epoch": str(state.epoch),
        "param_groups": json.dumps(groups),
        "config": json.dumps(state.config),
        "train_seconds": f"{state.train_seconds:.1f}",
    }
    save_safetensors(path, tensors, metadata)


def load_training_state(path: Path) -> TrainingState:
    """Read a file written by :func:`save_training_state`."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
        groups = json.loads(metadata["param_groups"])
        step, epoch = int(metadata["step"]), int(metadata["epoch"])
        config = json.loads(metadata["config"])
        train_seconds = float(metadata.get("train_seconds", "0"))
    except (SafetensorError, OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"cannot resume from {path}: {error}") from error

    def section(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    optimizer = _unflatten_optimizer(section("optimizer."), groups)
    return TrainingState(section("decoder."), section("ema."), optimizer, step, epoch, config, train_seconds)
