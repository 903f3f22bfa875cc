"""Train probes on frozen features: features are computed once per image. For the 1x1 heads a
fixed number of labelled pixels per image is kept (with the image's context, if the probe reads
it) and the head is fitted on those pixels; the conv head is fitted on whole pooled maps."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.probes.heads import Probe, ProbeSpec, assemble_inputs, conv_inputs, head_inputs
from flowfeat_core.probes.losses import METRIC_LAMBDA, RELATIVE_LAMBDA, silog_loss
from flowfeat_core.probes.metrics import IGNORE_LABEL


@dataclass(frozen=True)
class FitConfig:
    """Optimisation of a probe head (Adam on pixel samples)."""

    steps: int = 300
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    images_per_step: int = 16
    seed: int = 0
    #: The conv head's steps and peak rate (one-cycle schedule): it has 3x3 layers to train.
    conv_steps: int = 1000
    conv_learning_rate: float = 1e-3

    @classmethod
    def with_steps(cls, steps: int | None, seed: int = 0) -> FitConfig:
        """``steps`` for whichever head is fitted; None keeps each head's own default."""
        return cls(seed=seed) if steps is None else cls(steps=steps, conv_steps=steps, seed=seed)


def features_of(predictor: Predictor, rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(dense, encoder) features of one RGB uint8 image, on the CPU, batch of one."""
    encoder_features, dense = predictor.run(predictor.preprocess(rgb))
    return dense.cpu(), encoder_features.cpu()


def resize_target(target: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A depth or label map resized to ``size`` (height, width) by nearest neighbour."""
    if target.shape[:2] == size:
        return target
    return cv2.resize(target, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def target_validity(task: str, target: np.ndarray) -> np.ndarray:
    """Usable target pixels: finite positive depth, or labels other than 255."""
    if task == "depth":
        return np.isfinite(target) & (target > 0)
    return target != IGNORE_LABEL


def _check_target_shape(inputs: torch.Tensor, target: np.ndarray) -> None:
    if inputs.shape[-2:] != target.shape:
        raise ValueError(f"target {target.shape} does not match features {tuple(inputs.shape[-2:])}")


@dataclass
class PixelSamples:
    """Per image, ``pixels`` sampled input vectors (C) with their targets; grows image by image."""

    task: str
    pixels: int
    inputs: list[torch.Tensor] = field(default_factory=list)
    targets: list[torch.Tensor] = field(default_factory=list)

    def add(self, inputs: torch.Tensor, target: np.ndarray, rng: np.random.Generator) -> None:
        """Sample from one image's assembled inputs (1 x C x H x W) and its target (H x W)."""
        _check_target_shape(inputs, target)
        valid = np.flatnonzero(target_validity(self.task, target))
        if valid.size == 0:
            return
        chosen = torch.from_numpy(rng.choice(valid, self.pixels, replace=valid.size < self.pixels))
        flat = inputs[0].flatten(1)
        self.inputs.append(flat[:, chosen].to(torch.float16))
        values = target.reshape(-1)[chosen.numpy()]
        dtype = torch.float32 if self.task == "depth" else torch.int64
        self.targets.append(
            torch.as_tensor(values.astype(np.float32 if self.task == "depth" else np.int64), dtype=dtype)
        )


@dataclass
class MapSamples:
    """Per image, the conv head's pooled input map and the full-resolution target."""

    task: str
    inputs: list[torch.Tensor] = field(default_factory=list)
    targets: list[torch.Tensor] = field(default_factory=list)

    def add(self, inputs: torch.Tensor, target: np.ndarray, rng: np.random.Generator | None = None) -> None:
        """Keep one image's assembled inputs (1 x C x H x W), pooled, with its target (H x W)."""
        _check_target_shape(inputs, target)
        valid = target_validity(self.task, target)
        if not valid.any():
            return
        self.inputs.append(conv_inputs(inputs)[0].to(torch.float16))
        if self.task == "depth":  # invalid depth stored as 0, which the loss masks
            self.targets.append(torch.from_numpy(np.where(valid, target, 0).astype(np.float32)))
        else:
            self.targets.append(torch.from_numpy(target.astype(np.uint8)))


def new_samples(spec: ProbeSpec, pixels_per_image: int) -> PixelSamples | MapSamples:
    """The training samples ``spec``'s head is fitted on."""
    return MapSamples(spec.task) if spec.head == "conv" else PixelSamples(spec.task, pixels_per_image)


def fit_probe(spec: ProbeSpec, samples: PixelSamples | MapSamples, config: FitConfig = FitConfig()) -> Probe:
    """A probe of ``spec`` fitted on ``samples`` (input statistics standardised first)."""
    if spec.head == "conv":
        return _fit_conv_probe(spec, samples, config)
    if not samples.inputs:
        raise ValueError("no labelled pixels to train the probe on")
    inputs = torch.stack(samples.inputs).float()  # N x C x P
    targets = torch.stack(samples.targets)  # N x P
    if inputs.shape[1] != spec.head_channels:
        raise ValueError(f"samples have {inputs.shape[1]} channels, the probe expects {spec.head_channels}")
    _check_class_ids(spec, targets)
    torch.manual_seed(config.seed)
    probe = Probe(spec)
    probe.input_mean.copy_(inputs.mean(dim=(0, 2)))
    probe.input_std.copy_(inputs.std(dim=(0, 2)).clamp_min(1e-4))
    final = probe.head if spec.head == "linear" else probe.head[-1]
    if spec.task == "depth":
        with torch.no_grad():
            final.bias.fill_(float(targets.log().mean()))
    optimizer = torch.optim.AdamW(
        probe.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    lam = METRIC_LAMBDA if spec.metric else RELATIVE_LAMBDA
    for _ in range(config.steps):
        batch = torch.randperm(len(inputs), generator=generator)[: config.images_per_step]
        output = probe.raw_output(inputs[batch].unsqueeze(-1)).squeeze(-1)  # B x out x P
        if spec.task == "depth":
            target = targets[batch]
            loss = silog_loss(output[:, 0], target.log(), target > 0, lam)
        else:
            loss = F.cross_entropy(output, targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return probe.eval()


def _check_class_ids(spec: ProbeSpec, targets: torch.Tensor) -> None:
    """Refuse segmentation labels with ids past the class names (255, ignored, excepted)."""
    if spec.task != "segmentation":
        return
    ids = targets[targets != IGNORE_LABEL]
    if ids.numel() and int(ids.max()) >= spec.out_channels:
        raise ValueError(
            f"labels contain class id {int(ids.max())} but only "
            f"{spec.out_channels} class names were given (255 = ignore)"
        )


def _size_groups(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Indices of the maps grouped by size (images of other aspect ratios give other sizes)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, item in enumerate(maps):
        groups.setdefault(tuple(item.shape), []).append(index)
    return [torch.tensor(indices) for indices in groups.values()]


def _channel_statistics(maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) standard deviation over every pixel of the maps, summed
    map by map: no float32 copy of all of them at once."""
    count, total, squares = 0, 0.0, 0.0
    for item in maps:
        values = item.flatten(1).double()
        count += values.shape[1]
        total = total + values.sum(dim=1)
        squares = squares + (values * values).sum(dim=1)
    mean = total / count
    variance = (squares - count * mean * mean) / max(count - 1, 1)
    return mean.float(), variance.clamp_min(0.0).sqrt().float()


def _fit_conv_probe(spec: ProbeSpec, samples: MapSamples, config: FitConfig) -> Probe:
    """The conv head fitted on whole maps: its pooled output upsampled to the target's size, the
    same as at inference, and scored on every labelled pixel."""
    if not samples.inputs:
        raise ValueError("no labelled images to train the probe on")
    if samples.inputs[0].shape[0] != spec.head_channels:
        raise ValueError(f"samples have {samples.inputs[0].shape[0]} channels, the probe expects "
                         f"{spec.head_channels}")
    for target in samples.targets:
        _check_class_ids(spec, target)
    torch.manual_seed(config.seed)
    probe = Probe(spec)
    mean, std = _channel_statistics(samples.inputs)
    probe.input_mean.copy_(mean)
    probe.input_std.copy_(std.clamp_min(1e-4))
    if spec.task == "depth":
        logs = torch.cat([target[target > 0].log() for target in samples.targets])
        with torch.no_grad():
            probe.head.output.bias.fill_(float(logs.mean()))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=config.conv_learning_rate,
                                  weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.conv_learning_rate,
                                                   total_steps=config.conv_steps)
    generator = torch.Generator().manual_seed(config.seed)
    groups = _size_groups(samples.inputs)
    weights = torch.tensor([float(len(group)) for group in groups])
    lam = METRIC_LAMBDA if spec.metric else RELATIVE_LAMBDA
    for _ in range(config.conv_steps):
        group = groups[int(torch.multinomial(weights, 1, generator=generator))]
        batch = group[torch.randperm(len(group), generator=generator)[: config.images_per_step]]
        inputs = torch.stack([samples.inputs[i] for i in batch]).float()
        targets = torch.stack([samples.targets[i] for i in batch])
        output = F.interpolate(probe.conv_output(inputs), size=targets.shape[-2:], mode="bilinear",
                               align_corners=False)
        if spec.task == "depth":
            valid = targets > 0
            loss = silog_loss(output[:, 0].flatten(1), targets.clamp_min(1e-6).log().flatten(1),
                              valid.flatten(1), lam)
        else:
            loss = F.cross_entropy(output, targets.long(), ignore_index=IGNORE_LABEL)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return probe.eval()


def probe_inputs(probe_spec: ProbeSpec, dense: torch.Tensor, encoder_features: torch.Tensor) -> torch.Tensor:
    """What the head of ``probe_spec`` reads at every pixel of one image (``head_inputs``)."""
    return head_inputs(probe_spec, assemble_inputs(
        dense, encoder_features, probe_spec.dense_channels, probe_spec.encoder_channels))


@torch.inference_mode()
def predict_map(probe: Probe, dense: torch.Tensor, encoder_features: torch.Tensor) -> np.ndarray:
    """Depth (H x W float32) or class ids (H x W uint8) of one image at the dense resolution."""
    output = probe(dense, encoder_features)[0]
    if probe.task == "depth":
        return output[0].numpy().astype(np.float32)
    return output.argmax(0).numpy().astype(np.uint8)
