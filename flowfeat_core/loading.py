"""One entry point that turns a user's model choice into a FlowFeat network."""

from __future__ import annotations

from pathlib import Path

from flowfeat_core.checkpoint import load_checkpoint
from flowfeat_core.model import FlowFeat
from flowfeat_core.official import CheckpointError, read_torch_state_dict
from flowfeat_core.released import RELEASED_WEIGHTS, resolve_released_weights
from flowfeat_core.vit import RELEASED_VIT_SPECS

EMBEDDED_NAMES = ("default", "embedded", "efficientnet_lite0")


def infer_official_encoder(state: dict) -> str:
    """Name of the released encoder whose layout an official state dict has."""
    try:
        tokens, dim = state["encoder.pos_embed"].shape[1:]
        patch = state["encoder.patch_embed.proj.weight"].shape[-1]
    except (KeyError, ValueError) as error:
        raise CheckpointError("not a FlowFeat ViT checkpoint (no encoder.pos_embed)") from error
    for name, spec in RELEASED_VIT_SPECS.items():
        grid = spec.pretrain_grid
        if (spec.patch_size, spec.embed_dim, grid * grid + 1) == (patch, dim, tokens):
            return name
    raise CheckpointError(f"no released encoder has patch {patch}, width {dim} and {tokens} tokens")


def load_model(source: str | Path, encoder: str | None = None) -> FlowFeat:
    """Load ``source``: ``"default"`` (embedded EfficientNet-Lite0 model), one of our
    ``.safetensors`` checkpoints, an official ``.pth`` (encoder inferred unless given), or a
    released weights name such as ``dino2_s14_flowfeat_yt`` (cache dir, then download).
    The feature dimension of official checkpoints is read from their decoder."""
    source = str(source)
    if source in EMBEDDED_NAMES:
        from flowfeat_core.embedded import load_embedded_default

        return load_embedded_default()
    path = Path(source).expanduser()
    if path.suffix == ".safetensors":
        return load_checkpoint(path)
    if not path.exists() and f"{path.name.removesuffix('.pth')}.pth" in RELEASED_WEIGHTS:
        released_name = f"{path.name.removesuffix('.pth')}.pth"
        path = resolve_released_weights(released_name)
        encoder = encoder or RELEASED_WEIGHTS[released_name]
    if path.suffix != ".pth":
        raise CheckpointError(
            f"unknown model source {source!r}: expected 'default', a .safetensors "
            "checkpoint, an official .pth or a released weights name"
        )
    state = read_torch_state_dict(path)
    encoder = encoder or infer_official_encoder(state)
    fdim = int(state["decoder.norm.norm.weight"].shape[0]) if "decoder.norm.norm.weight" in state else 128
    return FlowFeat.from_official_state_dict(state, encoder, fdim, f"checkpoint {path}").eval()
