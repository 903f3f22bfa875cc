"""The fusion decoder whose output head works at stride 2 (``ModelConfig.decoder_upsample_last``):
only the final 1x1 projection sees full resolution, so the features at full resolution are the
bilinear upsampling of the head's stride-2 output; nothing else about the model changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from flowfeat_core import FlowFeat
from flowfeat_core.hub.checkpoint import save_checkpoint
from flowfeat_core.hub.loading import load_model
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.registry import VIT_SPECS, model_config
from flowfeat_core.training.config import parse_args
from flowfeat_core.training.trainer import build_model


@pytest.fixture(scope="module")
def late() -> FlowFeat:
    torch.manual_seed(0)
    return FlowFeat.embedded_default(decoder_upsample_last=True, decoder_head_width=48).eval()


def _head_output(model: FlowFeat, images: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    multiscale, _ = model.encode(images)
    return model.decoder.scratch(multiscale, out_hw)


def test_full_resolution_features_are_the_upsampled_stride_2_head(late: FlowFeat) -> None:
    images = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        full = _head_output(late, images, (64, 96))
        half = _head_output(late, images, (32, 48))
        upsampled = F.interpolate(half, size=(64, 96), mode="bilinear", align_corners=False)
        torch.testing.assert_close(full, upsampled, rtol=1e-4, atol=1e-5)
        # the default head refines at full resolution: not an upsampled stride-2 map
        plain = FlowFeat(replace(late.config, decoder_upsample_last=False)).eval()
        plain.load_state_dict(late.state_dict())
        plain_full = _head_output(plain, images, (64, 96))
        plain_half = F.interpolate(_head_output(plain, images, (32, 48)), size=(64, 96),
                                   mode="bilinear", align_corners=False)
        assert not torch.allclose(plain_full, plain_half, atol=1e-3)
        _, dense = late(torch.randn(1, 3, 100, 130))  # odd sides: padded and cropped back
    assert dense.shape == (1, 128, 100, 130) and torch.isfinite(dense).all()


def test_checkpoint_round_trip_keeps_the_head(late: FlowFeat, tmp_path: Path) -> None:
    loaded = load_model(save_checkpoint(tmp_path / "late.safetensors", late))
    assert loaded.config == late.config and loaded.config.decoder_head_width == 48
    images = torch.randn(1, 3, 48, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(images)[1], late(images)[1])


def test_training_builds_the_head_it_is_asked_for() -> None:
    model = build_model(parse_args(["--videos", "clip.mp4", "--decoder-upsample-last",
                                    "--decoder-head-width", "40"]))
    assert model.config.decoder_upsample_last and model.config.decoder_head_width == 40
    default = build_model(parse_args(["--videos", "clip.mp4"]))
    assert not default.config.decoder_upsample_last and default.config.decoder_head_width == 32


def test_refused_where_it_cannot_apply(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="decoder_upsample_last must be true or false"):
        replace(model_config("efficientnet_lite0"), decoder_upsample_last=1)
    with pytest.raises(ValueError, match="needs the fusion decoder"):
        FlowFeat(replace(model_config(VIT_SPECS["dino_vits16"]), decoder_upsample_last=True))
    for flags in (["--decoder-upsample-last"], ["--decoder-head-width", "48"]):
        with pytest.raises(SystemExit):
            parse_args(["--videos", "clip.mp4", "--init", "default", *flags])
        assert "--init brings its own" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--videos", "clip.mp4", "--decoder-head-width", "0"])
    # models without the option keep their config, and so their fingerprint
    assert "decoder_upsample_last" not in model_config("efficientnet_lite0").to_dict()
    assert not ModelConfig.from_dict(model_config("efficientnet_lite0").to_dict()).decoder_upsample_last
