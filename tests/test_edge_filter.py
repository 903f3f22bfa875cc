"""Edge-aware smoothing of the stride-2 head (``ModelConfig.decoder_edge_radius``): a guided
filter that follows the image's colour edges, switched on for a trained decoder without changing
its weights, carried by checkpoints and refused where there is no stride-2 head."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from flowfeat_core import FlowFeat
from flowfeat_core.cli.export_default import main as export_default
from flowfeat_core.hub.checkpoint import save_checkpoint
from flowfeat_core.hub.embedded import load_embedded_default
from flowfeat_core.hub.loading import load_model
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.decoders.guided_filter import GuidedFilter, box_mean
from flowfeat_core.models.registry import model_config
from flowfeat_core.training.config import parse_args
from flowfeat_core.training.trainer import build_model


@pytest.fixture(scope="module")
def head_at_stride_2() -> FlowFeat:
    torch.manual_seed(0)
    return FlowFeat.embedded_default(decoder_upsample_last=True, decoder_head_width=48).eval()


def _two_colour_guide(height: int, width: int, edge_column: int) -> torch.Tensor:
    """Dark blue on the left of ``edge_column``, bright orange from it on."""
    guide = torch.empty(1, 3, height, width)
    guide[..., :edge_column] = torch.tensor([0.1, 0.2, 0.6]).view(1, 3, 1, 1)
    guide[..., edge_column:] = torch.tensor([0.9, 0.5, 0.1]).view(1, 3, 1, 1)
    return guide


def test_a_map_linear_in_the_colour_passes_unchanged() -> None:
    """The guided filter's defining property: where the values are a linear function of the
    guide's colour, they come out as they went in, edges and all; a plain box blur smears them."""
    torch.manual_seed(0)
    guide = F.interpolate(torch.rand(1, 3, 12, 16), size=(48, 64), mode="nearest")
    weights, bias = torch.randn(5, 3), torch.randn(5)
    values = torch.einsum("cj,bjhw->bchw", weights, guide) + bias.view(1, 5, 1, 1)
    filtered = GuidedFilter(radius=2, eps=1e-8)(values, guide)
    torch.testing.assert_close(filtered, values, rtol=1e-3, atol=2e-3)
    assert (box_mean(values, 2) - values).abs().mean() > 0.1


def test_noise_is_smoothed_within_a_region_and_the_edge_kept() -> None:
    """A noisy feature step at the image's colour edge: both sides come out flat, the step stays."""
    guide = _two_colour_guide(32, 64, edge_column=28)
    step = torch.zeros(1, 1, 32, 64)
    step[..., 28:] = 1.0
    noisy = step + 0.2 * torch.randn(1, 1, 32, 64, generator=torch.Generator().manual_seed(0))
    filtered = GuidedFilter(radius=2, eps=1e-4)(noisy, guide)
    inside = torch.cat([filtered[..., 4:28, 2:24], filtered[..., 4:28, 32:62] - 1.0], dim=-1)
    assert inside.std() < 0.25 * (noisy - step).std()
    assert (filtered[..., 27] < 0.2).all() and (filtered[..., 28] > 0.8).all()


def test_switching_it_on_keeps_the_weights_and_changes_only_the_features(
    head_at_stride_2: FlowFeat, tmp_path: Path
) -> None:
    edge = head_at_stride_2.with_edge_filter(4)
    assert edge.config.decoder_edge_radius == 4
    assert edge.state_dict().keys() == head_at_stride_2.state_dict().keys()
    images = torch.randn(1, 3, 100, 130)  # odd sides: padded and cropped back
    with torch.inference_mode():
        plain_encoder, plain = head_at_stride_2(images)
        edge_encoder, dense = edge(images)
        assert torch.equal(plain_encoder, edge_encoder)
        assert dense.shape == plain.shape == (1, 128, 100, 130) and torch.isfinite(dense).all()
        assert not torch.allclose(dense, plain, atol=1e-2)
        assert torch.equal(edge.with_edge_filter(0)(images)[1], plain)
        loaded = load_model(save_checkpoint(tmp_path / "edge.safetensors", edge))
        assert loaded.config == edge.config and torch.equal(loaded(images)[1], dense)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the filter itself stays float32
            reduced = edge.decode(edge.encode(images)[0], images)
    assert torch.isfinite(reduced).all()
    assert F.cosine_similarity(reduced.float(), dense, dim=1).mean() > 0.98


def test_training_and_export_switch_it_on(head_at_stride_2: FlowFeat, tmp_path: Path) -> None:
    fresh = build_model(parse_args(["--videos", "clip.mp4", "--decoder-upsample-last",
                                    "--decoder-edge-radius", "3"]))
    assert fresh.config.decoder_edge_radius == 3
    trained = save_checkpoint(tmp_path / "trained.safetensors", head_at_stride_2)
    continued = build_model(parse_args(["--videos", "clip.mp4", "--init", str(trained),
                                        "--decoder-edge-radius", "2"]))
    assert continued.config.decoder_edge_radius == 2
    out = tmp_path / "decoder.safetensors"
    assert export_default([str(trained), "--out", str(out), "--decoder-edge-radius", "5"]) == 0
    shipped = load_embedded_default(out)
    assert shipped.config == replace(head_at_stride_2.config, decoder_edge_radius=5)
    images = torch.randn(1, 3, 48, 64)
    with torch.inference_mode():
        expected = head_at_stride_2.with_edge_filter(5)(images)[1]
        torch.testing.assert_close(shipped(images)[1], expected)


def test_refused_where_it_cannot_apply(capsys: pytest.CaptureFixture[str]) -> None:
    config = model_config("efficientnet_lite0")
    with pytest.raises(ValueError, match="decoder_edge_radius needs decoder_upsample_last"):
        replace(config, decoder_edge_radius=4)
    with pytest.raises(ValueError, match="decoder_edge_radius must be an integer in"):
        replace(config, decoder_upsample_last=True, decoder_edge_radius=-1)
    for eps in (0.0, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="decoder_edge_eps must be a positive finite number"):
            replace(config, decoder_upsample_last=True, decoder_edge_radius=4, decoder_edge_eps=eps)
    for flags in (["--decoder-edge-radius", "4"], ["--decoder-upsample-last", "--decoder-edge-radius", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(["--videos", "clip.mp4", *flags])
        assert "--decoder-edge-radius" in capsys.readouterr().err
    # models without the option keep their config, and so their fingerprint
    assert "decoder_edge_radius" not in config.to_dict() and "decoder_edge_eps" not in config.to_dict()
    assert ModelConfig.from_dict(config.to_dict()).decoder_edge_radius == 0
