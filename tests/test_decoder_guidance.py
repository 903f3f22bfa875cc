"""The guided fusion decoder (``ModelConfig.decoder_guidance``): the encoder's stride-2 map reaches
the output head, nothing else about the model changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from flowfeat_core import FlowFeat
from flowfeat_core.hub.checkpoint import save_checkpoint
from flowfeat_core.hub.loading import load_model
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.registry import VIT_SPECS, model_config
from flowfeat_core.training.config import parse_args
from flowfeat_core.training.trainer import build_model


@pytest.fixture(scope="module")
def guided() -> FlowFeat:
    torch.manual_seed(0)
    return FlowFeat.embedded_default(decoder_guidance=True).eval()


def test_guided_model_has_the_same_hypercolumn_and_output_size(guided: FlowFeat) -> None:
    plain = FlowFeat(replace(guided.config, decoder_guidance=False))
    plain.encoder.load_state_dict(guided.encoder.state_dict())
    images = torch.randn(1, 3, 100, 130)  # odd sides: padded and cropped back
    with torch.inference_mode():
        multiscale, coarse = guided.encode(images)
        plain_multiscale, plain_coarse = plain.eval().encode(images)
        _, dense = guided(images)
    assert [tuple(m.shape[1:2]) for m in multiscale] == [(16,), (24,), (40,), (112,), (320,)]
    assert multiscale[0].shape[-2:] == (2 * multiscale[1].shape[-2], 2 * multiscale[1].shape[-1])
    assert torch.equal(coarse, plain_coarse)
    assert torch.equal(guided.hypercolumn(multiscale, (100, 130)),
                       plain.hypercolumn(plain_multiscale, (100, 130)))
    assert dense.shape == (1, 128, 100, 130) and torch.isfinite(dense).all()


def test_the_stride_2_map_reaches_the_features(guided: FlowFeat) -> None:
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        multiscale, _ = guided.encode(images)
        dense = guided.decode(multiscale, images)
        without_guide = guided.decode([torch.zeros_like(multiscale[0]), *multiscale[1:]], images)
    assert not torch.allclose(dense, without_guide, atol=1e-3)


def test_guided_checkpoint_round_trip(guided: FlowFeat, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "guided.safetensors", guided)
    loaded = load_model(path)
    assert loaded.config.decoder_guidance and loaded.config == guided.config
    images = torch.randn(1, 3, 48, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(images)[1], guided(images)[1])


def test_guidance_is_refused_where_it_cannot_work() -> None:
    with pytest.raises(ValueError, match="decoder_guidance must be true or false"):
        replace(model_config("efficientnet_lite0"), decoder_guidance="yes")
    with pytest.raises(ValueError, match="decoder_guidance needs a CNN encoder"):
        FlowFeat(replace(model_config(VIT_SPECS["dino_vits16"]), decoder_guidance=True))
    # an unguided model's config, and so its fingerprint, is what it was before the field existed
    assert "decoder_guidance" not in model_config("efficientnet_lite0").to_dict()
    assert not ModelConfig.from_dict(model_config("efficientnet_lite0").to_dict()).decoder_guidance
    assert parse_args(["--videos", "clip.mp4", "--decoder-guidance"]).decoder_guidance
    assert not parse_args(["--videos", "clip.mp4"]).decoder_guidance  # the shipped default's recipe


def test_guidance_added_to_a_trained_decoder_starts_from_its_features(tmp_path: Path) -> None:
    torch.manual_seed(1)
    plain = FlowFeat.embedded_default().eval()
    path = save_checkpoint(tmp_path / "plain.safetensors", plain)
    model = build_model(parse_args(["--videos", "clip.mp4", "--init", str(path), "--decoder-guidance"]))
    assert model.config.decoder_guidance and not model.training
    images = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        assert torch.equal(model(images)[1], plain(images)[1])
    with pytest.raises(ValueError, match="guided already"):
        model.with_decoder_guidance()
