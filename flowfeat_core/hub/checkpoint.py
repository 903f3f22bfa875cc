"""Our checkpoint format: one safetensors file whose header metadata holds the model config
and provenance as JSON. No pickle anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.hub.official import check_state_dict
from flowfeat_core.hub.safetensors_header import read_tagged_metadata
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.process.atomic_io import save_safetensors

FORMAT_KEY = "flowfeat_format"
FORMAT_VERSION = "1"
CONFIG_KEY = "model_config"
PROVENANCE_KEY = "provenance"


def save_checkpoint(path: str | Path, model: FlowFeat, provenance: dict | None = None) -> Path:
    """Write ``model`` (config, all tensors) atomically to ``path`` (``.safetensors``).

    ``provenance`` records where the weights came from: training data, steps, teacher flow, ...
    """
    return save_safetensors(Path(path), model.state_dict(), write_metadata(model.config, provenance))


def write_metadata(config: ModelConfig, provenance: dict | None) -> dict[str, str]:
    """The safetensors header metadata of our checkpoints."""
    return {
        FORMAT_KEY: FORMAT_VERSION,
        CONFIG_KEY: json.dumps(config.to_dict()),
        PROVENANCE_KEY: json.dumps(provenance or {}),
    }


def read_checkpoint_metadata(path: str | Path) -> tuple[ModelConfig, dict]:
    """Model config and provenance of a checkpoint, without loading its tensors."""
    path = Path(path)
    metadata = read_tagged_metadata(path, FORMAT_KEY, FORMAT_VERSION, "checkpoint", CheckpointError)
    try:
        return ModelConfig.from_dict(json.loads(metadata[CONFIG_KEY])), json.loads(
            metadata.get(PROVENANCE_KEY, "{}")
        )
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path} has invalid model metadata: {error}") from error


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> FlowFeat:
    """Rebuild the model a checkpoint describes and load its tensors (strict)."""
    config, _ = read_checkpoint_metadata(path)
    model = FlowFeat(config)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read tensors of {path}: {error}") from error
    check_state_dict(tensors, model.state_dict(), f"checkpoint {path}")
    model.load_state_dict(tensors)
    return model.to(device).eval()
