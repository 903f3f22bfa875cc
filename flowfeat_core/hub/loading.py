"""One entry point that turns a user's model choice into a FlowFeat network."""

from __future__ import annotations

from pathlib import Path

from flowfeat_core.hub.checkpoint import load_checkpoint, read_checkpoint_metadata
from flowfeat_core.hub.embedded import load_embedded_default
from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.hub.official import model_from_official_state_dict, read_torch_state_dict
from flowfeat_core.hub.released import RELEASED_WEIGHTS, as_released_name, resolve_released_weights
from flowfeat_core.models.flowfeat import FlowFeat

EMBEDDED_NAMES = ("default", "embedded", "efficientnet_lite0")
SOURCE_HELP = (
    "'default' (embedded EfficientNet-Lite0), a .safetensors checkpoint, an official .pth or a "
    "released weights name"
)


def _released_name(source: str) -> str | None:
    """The released file a bare name (no folder, not an existing file) refers to."""
    path = Path(source).expanduser()
    return None if path.exists() or path.parent.name else as_released_name(path.name)


def check_model_source(source: str) -> None:
    """Raise :class:`CheckpointError` unless ``source`` can name a model, without loading it
    (a .safetensors must carry our metadata; a .pth must exist; released names are not fetched)."""
    path = Path(source).expanduser()
    if source in EMBEDDED_NAMES or _released_name(source):
        return
    if path.suffix == ".safetensors":
        read_checkpoint_metadata(path)
    elif not (path.suffix == ".pth" and path.is_file()):
        raise CheckpointError(
            f"model source {source!r} is none of: {SOURCE_HELP} ({', '.join(sorted(RELEASED_WEIGHTS))})"
        )


def load_model(source: str | Path, encoder: str | None = None) -> FlowFeat:
    """Load ``source``: ``"default"`` (embedded EfficientNet-Lite0 model), one of our
    ``.safetensors`` checkpoints, an official ``.pth`` (encoder inferred unless given), or a
    released weights name such as ``dino2_s14_flowfeat_yt`` (cache dir, then download).
    The feature dimension of official checkpoints is read from their decoder."""
    source = str(source)
    if source in EMBEDDED_NAMES:
        return load_embedded_default()
    path = Path(source).expanduser()
    if path.suffix == ".safetensors":
        return load_checkpoint(path)
    released = _released_name(source)
    if released:
        path = resolve_released_weights(released)
        encoder = encoder or RELEASED_WEIGHTS[released]
    if path.suffix != ".pth":
        raise CheckpointError(f"unknown model source {source!r}: expected {SOURCE_HELP}")
    return model_from_official_state_dict(read_torch_state_dict(path), encoder, None, f"checkpoint {path}")
