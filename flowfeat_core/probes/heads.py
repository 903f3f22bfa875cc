"""Probe heads on frozen FlowFeat features: a linear or small MLP (1x1 convolutions) head on the
dense features, optionally concatenated with the bilinearly upsampled encoder features."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TASKS = ("depth", "segmentation")
HEADS = ("linear", "mlp")


@dataclass(frozen=True)
class ProbeSpec:
    """Everything that defines a probe's architecture and meaning (stored in its checkpoint).

    ``dense_channels`` / ``encoder_channels`` are 0 when that feature map is not used; a probe on
    encoder features alone is the bilinear-upsampling baseline. Depth probes predict log-depth
    and output depth (metres when ``metric``, else up to an unknown scale).
    """

    task: str
    head: str
    dense_channels: int
    encoder_channels: int
    metric: bool = True
    class_names: tuple[str, ...] = ()
    class_colors: tuple[tuple[int, int, int], ...] = ()
    hidden_channels: int = 256

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"probe task must be one of {TASKS}, got {self.task!r}")
        if self.head not in HEADS:
            raise ValueError(f"probe head must be one of {HEADS}, got {self.head!r}")
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


class Probe(nn.Module):
    """A trained probe. ``probe(dense, encoder_features)`` gives depth (B x 1 x H x W) or class
    logits (B x K x H x W) at the resolution of ``dense``."""

    def __init__(self, spec: ProbeSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("input_mean", torch.zeros(spec.in_channels))
        self.register_buffer("input_std", torch.ones(spec.in_channels))
        if spec.head == "linear":
            self.head = nn.Conv2d(spec.in_channels, spec.out_channels, 1)
        else:
            self.head = nn.Sequential(
                nn.Conv2d(spec.in_channels, spec.hidden_channels, 1),
                nn.GELU(),
                nn.Conv2d(spec.hidden_channels, spec.out_channels, 1),
            )
        self.model_info: dict = {}
        self.metrics: dict = {}

    task = property(lambda self: self.spec.task)
    metric = property(lambda self: self.spec.metric)
    class_names = property(lambda self: list(self.spec.class_names))
    class_colors = property(lambda self: [tuple(color) for color in self.spec.class_colors])

    def raw_output(self, inputs: Tensor) -> Tensor:
        """Head output (log-depth or logits) for assembled, unnormalised inputs. The input
        normalisation is folded into the first 1x1 convolution, so the inputs are read once:
        normalising them first cost two more passes over the map, 50 of the 60 ms a linear depth
        probe took per 320x240 frame on one thread."""
        first = self.head if isinstance(self.head, nn.Conv2d) else self.head[0]
        weight = first.weight / self.input_std.view(1, -1, 1, 1)
        bias = first.bias - weight.flatten(1) @ self.input_mean
        output = F.conv2d(inputs, weight.to(inputs.dtype), bias.to(inputs.dtype))
        return output if first is self.head else self.head[1:](output)

    def forward(self, dense: Tensor, encoder_features: Tensor) -> Tensor:
        inputs = assemble_inputs(
            dense, encoder_features, self.spec.dense_channels, self.spec.encoder_channels
        )
        output = self.raw_output(inputs)
        return output.exp() if self.spec.task == "depth" else output
