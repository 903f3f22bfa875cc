"""The authors' FlowFeat checkpoints (``.pth`` state dicts): safe reading, strict key checks and
the encoder a state dict was trained with."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from flowfeat_core.error_text import first_line
from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.models.encoders.vit import ViTSpec
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.registry import VIT_SPECS, model_config

_WRAPPER_KEYS = ("state_dict", "model")
#: How torch.save files begin: a zip archive (PyTorch >= 1.6) or a pickle (protocol 2+ opcode).
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL_MARK = b"\x80"


def read_torch_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` with ``weights_only=True`` (no arbitrary unpickling) and unwrap
    ``{"state_dict": ...}`` / ``{"model": ...}`` containers."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with path.open("rb") as stream:
        head = stream.read(4)
    if not head.startswith((ZIP_MAGIC, PICKLE_PROTOCOL_MARK)):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a zip archive nor a "
                              "pickle: wrong or damaged file)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"cannot read checkpoint {path}: {first_line(error)}") from error
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


def infer_official_encoder(state: Mapping[str, torch.Tensor]) -> str:
    """Name of the registered ViT encoder whose layout an official state dict has."""
    try:
        tokens, dim = state["encoder.pos_embed"].shape[1:]
        patch = state["encoder.patch_embed.proj.weight"].shape[-1]
    except (KeyError, ValueError) as error:
        raise CheckpointError("not a FlowFeat ViT checkpoint (no encoder.pos_embed)") from error
    for name, spec in VIT_SPECS.items():
        grid = spec.pretrain_grid
        if (spec.patch_size, spec.embed_dim, grid * grid + 1) == (patch, dim, tokens):
            return name
    raise CheckpointError(f"no registered encoder has patch {patch}, width {dim} and {tokens} tokens")


def official_feature_dim(state: Mapping[str, torch.Tensor]) -> int:
    """Feature channels of an official checkpoint, read from its decoder's final norm."""
    norm = state.get("decoder.norm.norm.weight")
    return int(norm.shape[0]) if norm is not None else 128


def load_official_checkpoint(
    path: str | Path, encoder: str | ViTSpec | None = None, fdim: int | None = None
) -> FlowFeat:
    """Load an authors' FlowFeat ``.pth`` (released or in their layout) with strict key checks;
    the encoder is inferred from the tensors and ``fdim`` read from the decoder when not given."""
    state = read_torch_state_dict(path)
    encoder = encoder or infer_official_encoder(state)
    model = FlowFeat(model_config(encoder, fdim or official_feature_dim(state)))
    check_state_dict(state, model.state_dict(), f"checkpoint {path}")
    model.load_state_dict(state)
    return model.eval()
