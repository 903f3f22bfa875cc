"""Shared steps of the probe CLIs: model resolution, probe specs from feature shapes, and
training / scoring probes on (rgb, target) pairs with one feature pass per image."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from flowfeat_core.hub.loading import load_model
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.fingerprint import model_fingerprint
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.binding import MODEL_DIGEST
from flowfeat_core.probes.heads import Probe, ProbeSpec
from flowfeat_core.probes.metrics import DepthMetrics, SegmentationMetrics, median_scaled
from flowfeat_core.probes.training import (
    FitConfig,
    features_of,
    fit_probe,
    new_samples,
    predict_map,
    probe_inputs,
    resize_target,
    target_validity,
)

#: Model source meaning the embedded EfficientNet-Lite0 encoder with an *untrained* decoder.
UNTRAINED_EMBEDDED = "embedded-untrained"
#: Which feature maps a probe reads: FlowFeat dense features, optionally with the upsampled
#: encoder features, or the encoder features upsampled bilinearly alone (the baseline).
FEATURE_CHOICES = {"flowfeat": (True, False), "flowfeat+encoder": (True, True), "bilinear": (False, True)}
DEFAULT_PALETTE = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
)


def resolve_model(source: str) -> tuple[FlowFeat, dict]:
    """The FlowFeat network for ``source`` and a JSON description of it for probe checkpoints."""
    model = FlowFeat.embedded_default() if source == UNTRAINED_EMBEDDED else load_model(source)
    return model.eval(), model_description(model, source)


def model_description(model: FlowFeat, source: str) -> dict:
    """What a probe records of the model it was trained on (its fingerprint binds them)."""
    return {"source": str(source), "config": model.config.to_dict(),
            MODEL_DIGEST: model_fingerprint(model)}


def default_colors(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct display colours (a fixed palette, repeated if needed)."""
    return [DEFAULT_PALETTE[index % len(DEFAULT_PALETTE)] for index in range(count)]


def make_spec(
    task: str,
    head: str,
    choice: str,
    dense: torch.Tensor,
    encoder_features: torch.Tensor,
    metric: bool = True,
    class_names: Sequence[str] = (),
    class_colors: Sequence[tuple[int, int, int]] = (),
    context: bool = False,
) -> ProbeSpec:
    """A probe spec whose input channels match these features for feature ``choice``."""
    if choice not in FEATURE_CHOICES:
        raise ValueError(f"feature choice must be one of {sorted(FEATURE_CHOICES)}, got {choice!r}")
    use_dense, use_encoder = FEATURE_CHOICES[choice]
    return ProbeSpec(
        task,
        head,
        dense.shape[1] if use_dense else 0,
        encoder_features.shape[1] if use_encoder else 0,
        metric,
        tuple(class_names),
        tuple(tuple(color) for color in class_colors),
        context=context,
    )


def train_on_pairs(
    predictor: Predictor,
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    spec_for: Callable[[torch.Tensor, torch.Tensor], ProbeSpec],
    pixels_per_image: int,
    fit_config: FitConfig,
) -> Probe:
    """Fit the probe ``spec_for(dense, encoder_features)`` describes on (rgb, target) pairs."""
    rng = np.random.default_rng(fit_config.seed)
    spec, samples = None, None
    for rgb, target in pairs:
        dense, encoder_features = features_of(predictor, rgb)
        if spec is None:
            spec = spec_for(dense, encoder_features)
            samples = new_samples(spec, pixels_per_image)
        inputs = probe_inputs(spec, dense, encoder_features)
        samples.add(inputs, resize_target(target, tuple(dense.shape[-2:])), rng)
    if spec is None:
        raise ValueError("no training images")
    return fit_probe(spec, samples, fit_config)


def score_prediction(
    probe: Probe, prediction: np.ndarray, target: np.ndarray, accumulator: DepthMetrics | SegmentationMetrics,
    median_scale: bool = False,
) -> None:
    """Add one image's prediction to the metrics (relative depth, or any with ``median_scale``,
    is median-scaled first)."""
    if probe.task == "depth":
        valid = target_validity("depth", target)
        if valid.any() and (median_scale or not probe.metric):
            prediction = median_scaled(prediction, target, valid)
        accumulator.add(prediction, target, valid)
    else:
        accumulator.add(prediction, target)


def new_metrics(probe: Probe) -> DepthMetrics | SegmentationMetrics:
    """An empty accumulator for the probe's task."""
    return DepthMetrics() if probe.task == "depth" else SegmentationMetrics(len(probe.class_names))


def score_on_pairs(
    probe: Probe, predictor: Predictor, pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    median_scale: bool = False,
) -> dict[str, float]:
    """Metrics of ``probe`` on (rgb, target) pairs, at the features' resolution (depth
    median-scaled per image with ``median_scale``, as relative depth always is)."""
    metrics = new_metrics(probe)
    for rgb, target in pairs:
        dense, encoder_features = features_of(predictor, rgb)
        prediction = predict_map(probe, dense, encoder_features)
        score_prediction(probe, prediction, resize_target(target, prediction.shape), metrics,
                         median_scale)
    return metrics.result()
