"""FlowFeat model: the authors' reference fixture, released key layouts, any input size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowfeat_core import FlowFeat, ViTSpec
from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.hub.loading import load_model
from flowfeat_core.hub.official import load_official_checkpoint
from flowfeat_core.models.encoders.vit import DinoViT, resample_position_embedding
from flowfeat_core.models.registry import VIT_SPECS, model_config

TINY_SPEC = ViTSpec(
    patch_size=14, embed_dim=64, depth=4, num_heads=2, pretrain_img_size=518, hooks=(0, 1, 2, 3)
)


@pytest.fixture(scope="module")
def tiny_model(reference_dir: Path) -> FlowFeat:
    return load_official_checkpoint(
        reference_dir / "official_tiny_flowfeat.pth", encoder=TINY_SPEC, fdim=32
    ).eval()


@pytest.mark.parametrize("index", [0, 1])
def test_reproduces_reference_outputs(tiny_model: FlowFeat, reference_dir: Path, index: int) -> None:
    oracle = load_file(reference_dir / "official_tiny_flowfeat_io.safetensors")
    with torch.inference_mode():
        encoder_features, dense = tiny_model(oracle[f"input_{index}"])
    assert encoder_features.shape == oracle[f"encoder_{index}"].shape
    assert dense.shape == oracle[f"dense_{index}"].shape
    assert (encoder_features - oracle[f"encoder_{index}"]).abs().max() <= 1e-4
    assert (dense - oracle[f"dense_{index}"]).abs().max() <= 1e-4


def test_antialiased_position_resampling_would_miss_the_reference(reference_dir: Path) -> None:
    """timm's default (antialiased, exact-size) resampling differs from the reference's; ours must not."""
    state = torch.load(reference_dir / "official_tiny_flowfeat.pth", weights_only=True)
    patch_pos = state["encoder.pos_embed"][:, 1:]
    ours = resample_position_embedding(patch_pos, (8, 12))
    square = patch_pos.reshape(1, 37, 37, 64).permute(0, 3, 1, 2)
    timm_style = torch.nn.functional.interpolate(square, size=(8, 12), mode="bicubic", antialias=True)
    timm_style = timm_style.permute(0, 2, 3, 1).reshape(1, 96, 64)
    assert (ours - timm_style).abs().max() > 1e-3


@pytest.mark.parametrize("size", [(126, 126), (100, 137), (13, 29), (14, 14)])
def test_any_input_size(tiny_model: FlowFeat, size: tuple[int, int]) -> None:
    """Odd patch grids (126 px = 9 patches) crash the reference; sizes off the patch grid are padded."""
    with torch.inference_mode():
        encoder_features, dense = tiny_model(torch.randn(1, 3, *size))
    assert dense.shape == (1, 32, *size)
    assert encoder_features.shape[-2:] == (-(-size[0] // 14), -(-size[1] // 14))
    assert torch.isfinite(dense).all()


def test_padding_leaves_the_patch_aligned_part_consistent(tiny_model: FlowFeat) -> None:
    """Padding a 112x112 image to 112x126 by edge replication keeps the encoder grid aligned."""
    image = torch.randn(1, 3, 112, 112)
    with torch.inference_mode():
        _, reference = tiny_model(image)
        _, cropped = tiny_model(torch.nn.functional.pad(image, (0, 5, 0, 0), mode="replicate"))
    assert cropped.shape[-1] == 117
    # Same patches, one more column of context: the left half barely changes.
    assert (cropped[..., :56] - reference[..., :56]).abs().mean() < 0.3 * reference.abs().mean()


def released_layout(reference_dir: Path, name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the authors' released checkpoint for ``name``."""
    shapes = {}
    for line in (reference_dir / f"official_keys_{name}.txt").read_text().splitlines():
        key, shape, _ = line.split("\t")
        shapes[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return shapes


@pytest.mark.parametrize("name", ["dinov2_vits14", "dinov2_vitb14"])
def test_released_key_layouts_match(reference_dir: Path, name: str) -> None:
    model = FlowFeat(model_config(name))
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == released_layout(reference_dir, name)


def test_loads_a_checkpoint_in_the_released_vits14_layout(reference_dir: Path, tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    state = {
        key: torch.randn(shape, generator=generator) * 0.02
        for key, shape in released_layout(reference_dir, "dinov2_vits14").items()
    }
    path = tmp_path / "dino2_s14_flowfeat_yt.pth"
    torch.save({"model": state}, path)
    by_name = load_official_checkpoint(path, encoder="dinov2_vits14")
    inferred = load_model(path)
    assert inferred.config.vit_spec == VIT_SPECS["dinov2_vits14"]
    for key, value in state.items():
        assert torch.equal(by_name.state_dict()[key], value)
        assert torch.equal(inferred.state_dict()[key], value)
    with torch.inference_mode():
        _, dense = inferred.eval()(torch.randn(1, 3, 70, 98))
    assert dense.shape == (1, 128, 70, 98)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_official_checkpoint(path, encoder="dinov2_vitb14")


def test_dino_v1_layout_has_no_layerscale_or_mask_token(tmp_path: Path) -> None:
    model = FlowFeat(model_config("dino_vits16"))
    keys = model.state_dict().keys()
    assert "encoder.mask_token" not in keys and not any(".ls1." in key for key in keys)
    path = tmp_path / "dino_s16_flowfeat_yt.pth"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    assert loaded.config.encoder == "dino_vits16" and loaded.config.vit_spec.patch_size == 16


def test_strict_key_check_names_the_problem(tiny_model: FlowFeat, tmp_path: Path) -> None:
    state = dict(tiny_model.state_dict())
    state.pop("decoder.norm.norm.bias")
    state["decoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(
        CheckpointError, match=r"1 missing: decoder\.norm\.norm\.bias; 1 unexpected: decoder\.extra"
    ):
        load_official_checkpoint(path, encoder=TINY_SPEC, fdim=32)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    """weights_only=True: a .pth carrying arbitrary Python objects is rejected, not executed."""
    path = tmp_path / "evil.pth"
    torch.save({"model": {"weight": torch.zeros(1)}, "payload": Path("/etc/passwd")}, path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model(path)


def test_dinovit_rejects_bad_hooks() -> None:
    with pytest.raises(ValueError, match="hooks"):
        ViTSpec(14, 64, 4, 2, 518, (0, 1, 2, 4))
    assert isinstance(DinoViT(TINY_SPEC), torch.nn.Module)
