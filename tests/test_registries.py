"""Every registry entry, tested the way timm tests its model list: each encoder builds, feeds its
decoder the maps it declares and round-trips its config; each teacher flow runs (or, needing
weights that are not on disk, says which file); each backend is a choice of the node's parameter
and documented. Adding an entry adds its tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowfeat_core.inference.backends import BACKENDS
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.encoders.vit import ViTSpec
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.registry import CUSTOM_VIT, DECODERS, ENCODERS, model_config
from flowfeat_core.training.teacher_flow import TEACHER_FLOWS, make_teacher_flow
from flowfeat_ros.perception.parameters import SETTINGS

#: A ViT small enough to build in milliseconds, for the custom entry.
TINY_VIT = ViTSpec(14, 48, 4, 2, 56, (0, 1, 2, 3))


def _config(name: str) -> ModelConfig:
    return model_config(TINY_VIT if name == CUSTOM_VIT else name, fdim=16)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_encoder_builds_and_feeds_its_decoder(name):
    entry = ENCODERS[name]
    assert entry.summary and entry.decoder in DECODERS
    config = _config(name)
    assert ModelConfig.from_dict(config.to_dict()) == config
    torch.manual_seed(0)
    model = FlowFeat(config, pretrained_encoder=False).eval()
    side = model.size_multiple * 2
    images = torch.rand(2, 3, side, side + model.size_multiple)
    with torch.inference_mode():
        multiscale, _ = model.encode(images)
        encoder_features, dense = model(images)
    assert [level.shape[1] for level in multiscale] == list(model.encoder.channels)
    assert dense.shape == (2, 16, side, side + model.size_multiple)
    assert encoder_features.shape[0] == 2 and torch.isfinite(dense).all()


def test_an_unknown_encoder_name_fails_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown encoder 'resnet50'; known: efficientnet_lite0"):
        model_config("resnet50")


@pytest.mark.parametrize("name", sorted(TEACHER_FLOWS))
def test_every_teacher_flow_runs_or_names_its_missing_weights(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no weights on disk for RAFT here
    rng = np.random.default_rng(0)
    frame_a = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    frame_a = np.ascontiguousarray(np.repeat(np.repeat(frame_a[::4, ::4], 4, 0), 4, 1))
    frame_b = np.ascontiguousarray(np.roll(frame_a, (0, 2), axis=(0, 1)))
    if TEACHER_FLOWS[name].needs_weights:
        with pytest.raises((FileNotFoundError, RuntimeError, ValueError), match="weights"):
            make_teacher_flow(name, offline=True)(frame_a, frame_b)
        return
    flow = make_teacher_flow(name, offline=True)(frame_a, frame_b)
    assert flow.shape == (64, 80, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(2.0, abs=0.5)  # the 2-pixel shift


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_is_a_node_choice_and_documented(backend, repo_root):
    assert backend in SETTINGS["backend"].info.choices
    assert f"| `{backend}` |" in (repo_root / "README.md").read_text()
