"""One entry point that turns a user's model choice into a FlowFeat network."""

from __future__ import annotations

from pathlib import Path

import torch

from flowfeat_core.hub.checkpoint import (
    Attachment,
    model_from_contents,
    read_checkpoint,
    read_checkpoint_metadata,
)
from flowfeat_core.hub.embedded import load_embedded_default
from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.hub.official import load_official_checkpoint
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


def _classify(source: str) -> tuple[str, str | Path] | tuple[None, None]:
    """What ``source`` names, without touching its files: ``("embedded", name)``, ``("ours",
    .safetensors path)``, ``("released", released file name)``, ``("official", .pth path)``, or
    ``(None, None)``. One place, so checking and loading can never disagree."""
    if source in EMBEDDED_NAMES:
        return "embedded", source
    path = Path(source).expanduser()
    if path.suffix == ".safetensors":
        return "ours", path
    released = _released_name(source)
    if released:
        return "released", released
    if path.suffix == ".pth":
        return "official", path
    return None, None


def check_model_source(source: str) -> None:
    """Raise :class:`CheckpointError` unless ``source`` can name a model, without loading it
    (a .safetensors must carry our metadata; a .pth must exist; released names are not fetched)."""
    kind, where = _classify(source)
    if kind == "ours":
        read_checkpoint_metadata(where)
    elif kind is None or (kind == "official" and not where.is_file()):
        raise CheckpointError(
            f"model source {source!r} is none of: {SOURCE_HELP} ({', '.join(sorted(RELEASED_WEIGHTS))})"
        )


def load_model(source: str | Path, encoder: str | None = None) -> FlowFeat:
    """Load ``source``: ``"default"`` (embedded EfficientNet-Lite0 model), one of our
    ``.safetensors`` checkpoints, an official ``.pth`` (encoder inferred unless given), or a
    released weights name such as ``dino2_s14_flowfeat_yt`` (cache dir, then download).
    The feature dimension of official checkpoints is read from their decoder."""
    return load_model_with_attachments(source, encoder)[0]


def load_model_with_attachments(source: str | Path, encoder: str | None = None
                                ) -> tuple[FlowFeat, dict[str, Attachment]]:
    """:func:`load_model` plus what the checkpoint carries for its model (probes attached by the
    on-robot loop), both from one read of the file; only our checkpoints have attachments."""
    source = str(source)
    kind, where = _classify(source)
    attachments: dict[str, Attachment] = {}
    if kind == "embedded":
        model = load_embedded_default()
    elif kind == "ours":
        contents = read_checkpoint(where)
        model, attachments = model_from_contents(contents), contents.attachments()
    elif kind == "released":
        model = load_official_checkpoint(resolve_released_weights(where), encoder or RELEASED_WEIGHTS[where])
    elif kind == "official":
        model = load_official_checkpoint(where, encoder)
    else:
        raise CheckpointError(f"unknown model source {source!r}: expected {SOURCE_HELP}")
    check_weights(model, source)
    return model, attachments


#: Side of the image of the load-time forward pass: small (milliseconds on a CPU), a multiple of
#: every registered encoder's patch size and stride.
CHECK_SIDE = 112


def check_weights(model: FlowFeat, source: str) -> None:
    """Raise :class:`CheckpointError` when the weights cannot give usable features: a tensor with
    NaN/inf, or a forward pass whose features are not finite (garbled weights behind an intact
    header pass every structural check and then fail every frame)."""
    broken = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()]
              if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if broken:
        raise CheckpointError(f"{source}: {len(broken)} weight tensors hold NaN or inf "
                              f"(first: {broken[0]}); the file is damaged")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            image = torch.linspace(0, 1, 3 * CHECK_SIDE * CHECK_SIDE).reshape(1, 3, CHECK_SIDE, CHECK_SIDE)
            encoder_features, dense = model(image)
    finally:
        model.train(was_training)
    if not (bool(torch.isfinite(dense).all()) and bool(torch.isfinite(encoder_features).all())):
        raise CheckpointError(f"{source}: a test forward pass gives non-finite features; the "
                              "weights are damaged")
