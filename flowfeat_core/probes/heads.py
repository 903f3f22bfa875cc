"""Probe heads on frozen FlowFeat features: a linear or small MLP (1x1 convolutions) head on the
dense features, optionally concatenated with the bilinearly upsampled encoder features, and
optionally given the image's context (its mean feature vector and each pixel's position); or a
small convolutional head that sees the scene's layout around each pixel."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TASKS = ("depth", "segmentation")
HEADS = ("linear", "mlp", "conv")
#: The conv head runs on the inputs average-pooled by this factor: its 3x3 layers (dilations 1,
#: 2, 4) then span 60 x 60 dense pixels, on a sixteenth of the pixels.
CONV_POOL = 4
#: Width of the conv head's layers.
CONV_CHANNELS = 64
#: Context channels that give a pixel's place in the image: normalised row, then column.
POSITION_CHANNELS = 2


@dataclass(frozen=True)
class ProbeSpec:
    """Everything that defines a probe's architecture and meaning (stored in its checkpoint).

    ``dense_channels`` / ``encoder_channels`` are 0 when that feature map is not used; a probe on
    encoder features alone is the bilinear-upsampling baseline. Depth probes predict log-depth
    and output depth (metres when ``metric``, else up to an unknown scale). With ``context`` the
    head also reads, at every pixel, the image's mean input vector (the scene-level cue DINOv2's
    linear depth probes take from the class token) and the pixel's normalised row and column
    (a fixed camera's ground plane ties image height to distance).
    """

    task: str
    head: str
    dense_channels: int
    encoder_channels: int
    metric: bool = True
    class_names: tuple[str, ...] = ()
    class_colors: tuple[tuple[int, int, int], ...] = ()
    hidden_channels: int = 256
    context: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"probe task must be one of {TASKS}, got {self.task!r}")
        if self.head not in HEADS:
            raise ValueError(f"probe head must be one of {HEADS}, got {self.head!r}")
        if not isinstance(self.context, bool):
            raise ValueError(f"probe context must be true or false, got {self.context!r}")
        if self.context and self.head == "conv":
            raise ValueError("the conv head reads the image's context itself; context is for the "
                             "linear and mlp heads")
        if self.dense_channels < 0 or self.encoder_channels < 0 or not self.in_channels:
            raise ValueError("a probe needs dense and/or encoder feature channels")
        if self.task == "segmentation" and (
            len(self.class_names) < 2 or len(self.class_colors) != len(self.class_names)
        ):
            raise ValueError("a segmentation probe needs >= 2 class names and one colour per class")

    @property
    def in_channels(self) -> int:
        return self.dense_channels + self.encoder_channels

    @property
    def head_channels(self) -> int:
        """Width of the (standardised) vector the head reads per pixel: the features, then the
        context if used."""
        return 2 * self.in_channels + POSITION_CHANNELS if self.context else self.in_channels

    @property
    def out_channels(self) -> int:
        return 1 if self.task == "depth" else len(self.class_names)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ProbeSpec:
        values = dict(data)
        values["class_names"] = tuple(values.get("class_names", ()))
        values["class_colors"] = tuple(
            tuple(int(c) for c in color) for color in values.get("class_colors", ())
        )
        return cls(**values)


def assemble_inputs(
    dense: Tensor, encoder_features: Tensor, dense_channels: int, encoder_channels: int
) -> Tensor:
    """The probe's input map at the dense resolution: dense features and/or encoder features
    upsampled bilinearly to the dense size, concatenated along channels."""
    if dense.ndim != 4 or encoder_features.ndim != 4:
        raise ValueError(
            f"features must be B x C x H x W, got {tuple(dense.shape)} and {tuple(encoder_features.shape)}"
        )
    parts = []
    if dense_channels:
        if dense.shape[1] != dense_channels:
            raise ValueError(f"probe expects {dense_channels} dense channels, got {dense.shape[1]}")
        parts.append(dense)
    if encoder_channels:
        if encoder_features.shape[1] != encoder_channels:
            raise ValueError(
                f"probe expects {encoder_channels} encoder channels, got {encoder_features.shape[1]}"
            )
        parts.append(
            F.interpolate(encoder_features, size=dense.shape[-2:], mode="bilinear", align_corners=False)
        )
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def pixel_positions(height: int, width: int, like: Tensor) -> Tensor:
    """1 x 2 x H x W: each pixel centre's row and column, from -1 (top, left) to 1."""
    rows = (torch.arange(height, dtype=like.dtype, device=like.device) + 0.5) * (2.0 / height) - 1.0
    cols = (torch.arange(width, dtype=like.dtype, device=like.device) + 0.5) * (2.0 / width) - 1.0
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij")).unsqueeze(0)


def head_inputs(spec: ProbeSpec, inputs: Tensor) -> Tensor:
    """What the head reads at every pixel, for assembled inputs (B x C x H x W): the inputs, and
    with ``spec.context`` their image mean and the pixel positions appended. Training samples
    pixels of this map; ``Probe.forward`` computes the same result without building it."""
    if not spec.context:
        return inputs
    batch, _, height, width = inputs.shape
    mean = inputs.mean(dim=(2, 3), keepdim=True).expand(-1, -1, height, width)
    positions = pixel_positions(height, width, inputs).expand(batch, -1, -1, -1)
    return torch.cat([inputs, mean, positions], dim=1)


def conv_inputs(inputs: Tensor) -> Tensor:
    """The conv head's input map: the assembled inputs average-pooled by ``CONV_POOL``."""
    return F.avg_pool2d(inputs, CONV_POOL, ceil_mode=True)


class ConvHead(nn.Module):
    """Three 3x3 convolutions (dilations 1, 2, 4) on the standardised, pooled inputs and the
    pixel positions, a scene-wide branch (the mean of the last layer, added back everywhere) and
    a 1x1 output. A per-pixel head cannot see where the floor meets the wall or how far the free
    space reaches: on procedural bags with odometry, trained from motion, this head's metric
    depth AbsRel was 0.206 where the per-pixel MLP's was 0.341 (README, "Depth without a depth
    sensor")."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.spatial = nn.ModuleList(
            nn.Conv2d(in_channels + POSITION_CHANNELS if dilation == 1 else CONV_CHANNELS,
                      CONV_CHANNELS, 3, padding=dilation, dilation=dilation)
            for dilation in (1, 2, 4)
        )
        self.scene = nn.Linear(CONV_CHANNELS, CONV_CHANNELS)
        self.output = nn.Conv2d(CONV_CHANNELS, out_channels, 1)

    def forward(self, standardised: Tensor) -> Tensor:
        batch, _, height, width = standardised.shape
        positions = pixel_positions(height, width, standardised).expand(batch, -1, -1, -1)
        hidden = torch.cat([standardised, positions], dim=1)
        for layer in self.spatial:
            hidden = F.gelu(layer(hidden))
        hidden = hidden + self.scene(hidden.mean(dim=(2, 3)))[:, :, None, None]
        return self.output(hidden)


class Probe(nn.Module):
    """A trained probe. ``probe(dense, encoder_features)`` gives depth (B x 1 x H x W) or class
    logits (B x K x H x W) at the resolution of ``dense``."""

    def __init__(self, spec: ProbeSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("input_mean", torch.zeros(spec.head_channels))
        self.register_buffer("input_std", torch.ones(spec.head_channels))
        if spec.head == "linear":
            self.head = nn.Conv2d(spec.head_channels, spec.out_channels, 1)
        elif spec.head == "conv":
            self.head = ConvHead(spec.head_channels, spec.out_channels)
        else:
            self.head = nn.Sequential(
                nn.Conv2d(spec.head_channels, spec.hidden_channels, 1),
                nn.GELU(),
                nn.Conv2d(spec.hidden_channels, spec.out_channels, 1),
            )
        self.model_info: dict = {}
        self.metrics: dict = {}

    task = property(lambda self: self.spec.task)
    metric = property(lambda self: self.spec.metric)
    class_names = property(lambda self: list(self.spec.class_names))
    class_colors = property(lambda self: [tuple(color) for color in self.spec.class_colors])

    def conv_output(self, pooled: Tensor) -> Tensor:
        """The conv head's output at the pooled resolution, for ``conv_inputs`` (computed in the
        head's precision, returned in the inputs')."""
        mean, std = self.input_mean.view(1, -1, 1, 1), self.input_std.view(1, -1, 1, 1)
        return self.head((pooled.to(mean.dtype) - mean) / std).to(pooled.dtype)

    def folded_first_layer(self) -> tuple[Tensor, Tensor]:
        """Weight and bias of the head's first 1x1 convolution with the input normalisation
        folded in, so the inputs are read once: normalising them first cost two more passes over
        the map, 50 of the 60 ms a linear depth probe took per 320x240 frame on one thread."""
        first = self.head if isinstance(self.head, nn.Conv2d) else self.head[0]
        weight = first.weight / self.input_std.view(1, -1, 1, 1)
        return weight, first.bias - weight.flatten(1) @ self.input_mean

    def after_first_layer(self, output: Tensor) -> Tensor:
        """The rest of the head, after its first convolution."""
        return output if isinstance(self.head, nn.Conv2d) else self.head[1:](output)

    def raw_output(self, inputs: Tensor) -> Tensor:
        """Head output (log-depth or logits) for unnormalised head inputs (``head_inputs``)."""
        weight, bias = self.folded_first_layer()
        return self.after_first_layer(F.conv2d(inputs, weight.to(inputs.dtype), bias.to(inputs.dtype)))

    def forward(self, dense: Tensor, encoder_features: Tensor) -> Tensor:
        inputs = assemble_inputs(
            dense, encoder_features, self.spec.dense_channels, self.spec.encoder_channels
        )
        if self.spec.head == "conv":
            output = F.interpolate(self.conv_output(conv_inputs(inputs)), size=inputs.shape[-2:],
                                   mode="bilinear", align_corners=False)
        elif self.spec.context:
            output = self.context_output(inputs)
        else:
            output = self.raw_output(inputs)
        return output.exp() if self.spec.task == "depth" else output

    def context_output(self, inputs: Tensor) -> Tensor:
        """``raw_output(head_inputs(spec, inputs))`` without the widened map: the mean's share of
        the first layer is one bias per image, the positions' a two-channel convolution."""
        weight, bias = self.folded_first_layer()
        weight, bias = weight.to(inputs.dtype), bias.to(inputs.dtype)
        channels = inputs.shape[1]
        on_pixels, on_mean, on_positions = weight.split([channels, channels, POSITION_CHANNELS], dim=1)
        image_bias = bias + inputs.mean(dim=(2, 3)) @ on_mean.flatten(1).T  # B x out
        positions = pixel_positions(inputs.shape[2], inputs.shape[3], inputs)
        output = (F.conv2d(inputs, on_pixels) + F.conv2d(positions, on_positions)
                  + image_bias[:, :, None, None])
        return self.after_first_layer(output)
