"""Probes that read the image's context (its mean feature vector and the pixel's position):
what the head computes at inference equals what it was trained on, it learns what a per-pixel
head cannot, and the choice survives a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flowfeat_core.probes.heads import Probe, ProbeSpec, assemble_inputs, head_inputs
from flowfeat_core.probes.io import load_probe, save_probe
from flowfeat_core.probes.training import FitConfig, PixelSamples, fit_probe, predict_map


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
