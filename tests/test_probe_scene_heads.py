"""Probes that see beyond their pixel: 1x1 heads that read the image's context (its mean feature
vector and the pixel's position), and the conv head. What they compute at inference equals what
they were trained on, they learn what a head on the pixel alone cannot, and checkpoints keep
them."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from flowfeat_core.probes.heads import Probe, ProbeSpec, assemble_inputs, head_inputs
from flowfeat_core.probes.io import load_probe, save_probe
from flowfeat_core.probes.training import (
    FitConfig,
    PixelSamples,
    fit_probe,
    new_samples,
    predict_map,
)


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_inference_equals_the_head_on_the_widened_map(head):
    """``forward`` folds the mean and the positions into a bias and a two-channel convolution;
    training reads the widened map pixel by pixel. Both must give the same output."""
    torch.manual_seed(0)
    spec = ProbeSpec("depth", head, 8, 4, context=True)
    probe = Probe(spec)
    probe.input_mean.normal_()
    probe.input_std.uniform_(0.5, 2.0)
    dense, encoder = torch.randn(2, 8, 12, 16), torch.randn(2, 4, 3, 4)
    widened = head_inputs(spec, assemble_inputs(dense, encoder, 8, 4))
    assert widened.shape == (2, spec.head_channels, 12, 16) and spec.head_channels == 2 * 12 + 2
    with torch.no_grad():
        torch.testing.assert_close(probe(dense, encoder).log(), probe.raw_output(widened))


def _scenes(count: int, rng: np.random.Generator) -> list[tuple[torch.Tensor, np.ndarray]]:
    """Feature maps whose pixels are one of two local appearances, the share of the second
    giving the scene's scale, and whose depth grows towards the top of the image (a ground
    plane): no single pixel's features tell its depth."""
    scenes = []
    height, width = 24, 32
    rows = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]
    for _ in range(count):
        share = rng.uniform(0.1, 0.9)
        second = rng.random((height, width)) < share
        features = np.where(second, 1.0, -1.0).astype(np.float32)[None, None]
        features = np.concatenate([features, -features], axis=1)
        depth = (1.0 + 3.0 * share) * (1.0 + 2.0 * rows) * np.ones((1, width), np.float32)
        scenes.append((torch.from_numpy(features), depth))
    return scenes


def _abs_rel(probe: Probe, scenes) -> float:
    errors = [np.abs(predict_map(probe, features, features[:, :0]) - depth) / depth
              for features, depth in scenes]
    return float(np.mean(errors))


def test_context_recovers_scene_scale_and_ground_plane_a_pixel_head_cannot():
    rng = np.random.default_rng(0)
    train, test = _scenes(24, rng), _scenes(8, rng)
    errors = {}
    for context in (False, True):
        spec = ProbeSpec("depth", "mlp", 2, 0, context=context, hidden_channels=32)
        samples = PixelSamples("depth", 256)
        for features, depth in train:
            samples.add(head_inputs(spec, features), depth, rng)
        errors[context] = _abs_rel(fit_probe(spec, samples, FitConfig(steps=200)), test)
    assert errors[True] < 0.08 < 0.25 < errors[False], errors


def test_context_is_kept_by_checkpoints_and_old_files_read_without_it(tmp_path):
    probe = Probe(ProbeSpec("depth", "linear", 8, 0, context=True))
    loaded = load_probe(save_probe(tmp_path / "context.safetensors", probe))
    assert loaded.spec.context and loaded.input_mean.shape == (2 * 8 + 2,)
    old_spec = ProbeSpec("depth", "linear", 8, 0).to_dict()
    del old_spec["context"]
    assert ProbeSpec.from_dict(json.loads(json.dumps(old_spec))).context is False
    with pytest.raises(ValueError, match="context must be true or false"):
        ProbeSpec("depth", "linear", 8, 0, context="yes")


def _neighbourhood_scenes(count: int, rng: np.random.Generator) -> list[tuple[torch.Tensor, np.ndarray]]:
    """Two local appearances in blobs; depth follows the share of the second within about 16
    pixels, which neither the pixel nor the image mean tells."""
    scenes = []
    for _ in range(count):
        noise = cv2.GaussianBlur(rng.standard_normal((48, 64)).astype(np.float32), (0, 0), 3)
        second = (noise > 0).astype(np.float32)
        depth = 1.0 + 3.0 * cv2.GaussianBlur(second, (0, 0), 8)
        scenes.append((torch.from_numpy(np.stack([second, 1.0 - second]))[None], depth))
    return scenes


def test_conv_head_learns_from_the_neighbourhood_what_pixel_heads_cannot():
    rng = np.random.default_rng(0)
    train, test = _neighbourhood_scenes(24, rng), _neighbourhood_scenes(8, rng)
    errors = {}
    for head, context in (("mlp", True), ("conv", False)):
        spec = ProbeSpec("depth", head, 2, 0, context=context, hidden_channels=32)
        samples = new_samples(spec, 256)
        for features, depth in train:
            samples.add(head_inputs(spec, features), depth, rng)
        config = FitConfig(steps=150, conv_steps=150, images_per_step=8)
        errors[head] = _abs_rel(fit_probe(spec, samples, config), test)
    assert errors["conv"] < 0.05 < 0.1 < errors["mlp"], errors


def test_conv_head_segments_round_trips_and_refuses_context(tmp_path):
    rng = np.random.default_rng(1)
    spec = ProbeSpec("segmentation", "conv", 2, 0, class_names=("a", "b"),
                     class_colors=((0, 0, 0), (255, 255, 255)))
    samples = new_samples(spec, 256)
    for features, depth in _neighbourhood_scenes(8, rng):
        labels = (depth > 2.5).astype(np.uint8)
        labels[:4] = 255  # ignored
        samples.add(features, labels, rng)
    probe = fit_probe(spec, samples, FitConfig(conv_steps=20, images_per_step=4))
    loaded = load_probe(save_probe(tmp_path / "conv.safetensors", probe))
    features = torch.randn(1, 2, 30, 41)  # not a multiple of the pooling
    with torch.inference_mode():
        assert torch.equal(loaded(features, features[:, :0]), probe(features, features[:, :0]))
        assert probe(features, features[:, :0]).shape == (1, 2, 30, 41)
    samples.add(features, np.full((30, 41), 5, np.uint8))
    with pytest.raises(ValueError, match="class id 5 but only 2 class names"):
        fit_probe(spec, samples, FitConfig(conv_steps=1))
    with pytest.raises(ValueError, match="conv head reads the image's context itself"):
        ProbeSpec("depth", "conv", 8, 0, context=True)
