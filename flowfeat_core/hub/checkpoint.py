"""Our checkpoint format: one safetensors file whose header metadata holds the model config
and provenance as JSON. No pickle anywhere.

A checkpoint may carry *attachments*: files made for its model (the on-robot loop attaches the
depth probe it trained on the candidate), stored under ``attached.<name>.`` tensors and an
``attached.<name>`` JSON header entry. Deploying, rolling back or loading the one file then moves
a model and its probes together; what an attachment holds is its owner's business (probes/io.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.hub.official import check_state_dict
from flowfeat_core.hub.safetensors_header import read_tagged_file, read_tagged_metadata
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.process.atomic_io import save_safetensors

FORMAT_KEY = "flowfeat_format"
FORMAT_VERSION = "1"
CONFIG_KEY = "model_config"
PROVENANCE_KEY = "provenance"
ATTACHMENT_PREFIX = "attached."


@dataclass(frozen=True)
class Attachment:
    """Tensors and string metadata attached to a checkpoint under one name."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]


@dataclass(frozen=True)
class CheckpointContents:
    """Everything one checkpoint file holds, read at once (see :func:`read_checkpoint`)."""

    path: Path
    metadata: dict[str, str]
    tensors: dict[str, torch.Tensor]

    def model_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.tensors.items() if not k.startswith(ATTACHMENT_PREFIX)}

    def attachments(self) -> dict[str, Attachment]:
        """Name -> attachment; CheckpointError when an entry's metadata is not JSON."""
        found = {}
        for key, text in self.metadata.items():
            if not key.startswith(ATTACHMENT_PREFIX):
                continue
            name = key[len(ATTACHMENT_PREFIX):]
            prefix = f"{ATTACHMENT_PREFIX}{name}."
            try:
                metadata = json.loads(text)
            except ValueError as error:
                raise CheckpointError(f"{self.path}: attachment {name!r} has invalid metadata: "
                                      f"{error}") from None
            found[name] = Attachment({k[len(prefix):]: v for k, v in self.tensors.items()
                                      if k.startswith(prefix)}, metadata)
        return found


def save_checkpoint(path: str | Path, model: FlowFeat, provenance: dict | None = None) -> Path:
    """Write ``model`` (config, all tensors) atomically to ``path`` (``.safetensors``).

    ``provenance`` records where the weights came from: training data, steps, teacher flow, ...
    """
    return save_safetensors(Path(path), model.state_dict(), write_metadata(model.config, provenance))


def save_with_attachments(path: str | Path, contents: CheckpointContents,
                          attachments: dict[str, Attachment]) -> Path:
    """Write the model of ``contents`` with ``attachments`` (replacing any it had) atomically."""
    metadata = {k: v for k, v in contents.metadata.items() if not k.startswith(ATTACHMENT_PREFIX)}
    tensors = contents.model_tensors()
    for name, attachment in attachments.items():
        metadata[f"{ATTACHMENT_PREFIX}{name}"] = json.dumps(attachment.metadata)
        tensors.update({f"{ATTACHMENT_PREFIX}{name}.{k}": v for k, v in attachment.tensors.items()})
    return save_safetensors(Path(path), tensors, metadata)


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
    return _config_and_provenance(path, metadata)


def _config_and_provenance(path: Path, metadata: dict[str, str]) -> tuple[ModelConfig, dict]:
    try:
        return ModelConfig.from_dict(json.loads(metadata[CONFIG_KEY])), json.loads(
            metadata.get(PROVENANCE_KEY, "{}")
        )
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path} has invalid model metadata: {error}") from error


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Header and tensors of a checkpoint from one open file (the model and its attachments are
    always of the same version of the file)."""
    path = Path(path)
    metadata, tensors = read_tagged_file(path, FORMAT_KEY, FORMAT_VERSION, "checkpoint",
                                         CheckpointError)
    return CheckpointContents(path, metadata, tensors)


def model_from_contents(contents: CheckpointContents,
                        device: str | torch.device = "cpu") -> FlowFeat:
    """Rebuild the model a checkpoint describes and load its tensors (strict; attachments are
    not the model's)."""
    config, _ = _config_and_provenance(contents.path, contents.metadata)
    model = FlowFeat(config)
    tensors = contents.model_tensors()
    check_state_dict(tensors, model.state_dict(), f"checkpoint {contents.path}")
    model.load_state_dict(tensors)
    return model.to(device).eval()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> FlowFeat:
    """Rebuild the model a checkpoint describes and load its tensors (strict)."""
    return model_from_contents(read_checkpoint(path), device)
