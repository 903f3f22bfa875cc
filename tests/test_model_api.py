"""Embedded encoder, our checkpoints, released-weights resolution, Predictor and FeaturePCA."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage import data as skimage_data

from flowfeat_core import FlowFeat
from flowfeat_core.hub.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from flowfeat_core.hub.errors import CheckpointError, WeightsUnavailableError
from flowfeat_core.hub.loading import load_model
from flowfeat_core.hub.released import download_file, resolve_released_weights
from flowfeat_core.inference.device import available_cores, cpu_inference_threads
from flowfeat_core.inference.pca import FeaturePCA
from flowfeat_core.inference.predictor import Predictor, network_size
from flowfeat_core.models.encoders.efficientnet import load_imagenet_classifier
from flowfeat_core.models.normalization import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def embedded() -> FlowFeat:
    torch.manual_seed(0)
    return FlowFeat.embedded_default().eval()


@pytest.fixture(scope="module")
def photo(opencv_data_dir: Path) -> np.ndarray:
    bgr = cv2.imread(str(opencv_data_dir / "fruits.jpg"))
    return cv2.cvtColor(cv2.resize(bgr, (320, 240), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def test_packaged_imagenet_weights_classify_the_cat() -> None:
    classifier = load_imagenet_classifier()
    image = cv2.resize(skimage_data.chelsea(), (224, 224), interpolation=cv2.INTER_AREA) / 255.0
    tensor = torch.from_numpy(((image - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32))
    with torch.inference_mode():
        label = classifier(tensor.permute(2, 0, 1)[None]).argmax(1).item()
    assert 281 <= label <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_embedded_model_gives_dense_features_offline(embedded: FlowFeat, photo: np.ndarray) -> None:
    features = Predictor(embedded, device="cpu").predict(photo)
    assert features.shape == (1, 128, 240, 320)
    per_pixel_mean = features.mean(1)
    assert torch.isfinite(features).all()
    assert per_pixel_mean.abs().max() < 1e-3  # channel LayerNorm (identity affine before training)


def test_checkpoint_round_trip_is_exact(embedded: FlowFeat, photo: np.ndarray, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "model.safetensors", embedded, {"steps": 0, "data": "none"})
    config, provenance = read_checkpoint_metadata(path)
    assert config == embedded.config and provenance == {"steps": 0, "data": "none"}
    loaded = load_model(path)
    for key, value in embedded.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    original = Predictor(embedded, device="cpu").predict(photo)
    assert torch.equal(Predictor(loaded, device="cpu").predict(photo), original)


def test_bad_checkpoints_give_clear_errors(embedded: FlowFeat, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.safetensors"
    good = save_checkpoint(tmp_path / "good.safetensors", embedded)
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"truncated\.safetensors"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a flowfeat checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="unknown model source"):
        load_model(tmp_path / "model.onnx")
    noise = tmp_path / "noise.pth"
    noise.write_bytes(b"\x17" + random.Random(0).randbytes(4095))  # 4 KiB of random bytes
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        load_model(noise)  # not torch's unrelated "Weights only load failed ... 2.6" line
    mismatched = tmp_path / "mismatched.safetensors"
    state = {k: v.contiguous() for k, v in embedded.state_dict().items() if "norm" not in k}
    metadata = {"flowfeat_format": "1", "model_config": json.dumps(embedded.config.to_dict())}
    save_file(state, str(mismatched), metadata=metadata)
    with pytest.raises(CheckpointError, match=r"missing: decoder\.norm\.norm\.bias"):
        load_checkpoint(mismatched)


def test_released_weights_resolve_from_the_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWFEAT_HOME", str(tmp_path))
    (tmp_path / "dino2_s14_flowfeat_yt.pth").write_bytes(b"x")
    assert resolve_released_weights("dino2_s14_flowfeat_yt") == tmp_path / "dino2_s14_flowfeat_yt.pth"
    with pytest.raises(ValueError, match="unknown released FlowFeat weights"):
        resolve_released_weights("dino3_flowfeat")


def test_released_weights_offline_error_names_file_and_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFEAT_HOME", str(tmp_path))
    # Nothing listens on the discard port: the download fails at once, as it does offline.
    monkeypatch.setattr("flowfeat_core.hub.released.RELEASE_URL", "http://127.0.0.1:9/")
    with pytest.raises(WeightsUnavailableError) as error:
        load_model("dino2_b14_flowfeat_kt")
    message = str(error.value)
    assert "dino2_b14_flowfeat_kt.pth" in message and str(tmp_path / "dino2_b14_flowfeat_kt.pth") in message
    assert "\n" not in message
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_download_is_atomic_and_complete(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(np.random.default_rng(0).bytes(3 << 20))
    target = download_file(source.as_uri(), tmp_path / "cache" / "weights.pth", timeout_s=5)
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["weights.pth"]


def test_predictor_colour_order_batching_and_resolution(embedded: FlowFeat, photo: np.ndarray) -> None:
    predictor = Predictor(embedded, device="cpu")
    rgb = predictor.predict(photo)
    bgr = predictor.predict(np.ascontiguousarray(photo[..., ::-1]), color="bgr")
    assert torch.allclose(rgb, bgr, atol=1e-5)
    batch = predictor.predict(np.stack([photo, photo[::-1].copy()]))
    assert batch.shape[0] == 2 and torch.allclose(batch[:1], rgb, atol=1e-4)
    as_input = predictor.predict(cv2.resize(photo, (160, 120)), resolution="input", as_numpy=True)
    assert as_input.shape == (1, 120, 160, 128) and as_input.dtype == np.float32
    assert as_input.flags["C_CONTIGUOUS"]
    for bad in (
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 5, 3), np.uint8),
    ):
        with pytest.raises(ValueError):
            predictor.predict(bad)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Predictor(embedded, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="input_short_side"):
        Predictor(embedded, device="cpu", input_short_side=-5)


def test_network_size_policy() -> None:
    assert network_size((480, 640), 240, 16) == (240, 320)
    assert network_size((576, 768), 224, 14) == (224, 294)
    assert network_size((480, 640), 240, 16, exact_hw=(128, 160)) == (128, 160)
    with pytest.raises(ValueError, match="short_side"):
        network_size((480, 640), 0, 16)


def test_input_short_side_zero_means_the_models_preferred_size(embedded: FlowFeat) -> None:
    """One meaning everywhere (Predictor, perception node, probe CLI): 0 = the model's preferred size."""
    assert Predictor(embedded, device="cpu").input_short_side == embedded.config.input_short_side
    assert Predictor(embedded, device="cpu", input_short_side=0).network_size((480, 640)) == (240, 320)
    assert Predictor(embedded, device="cpu", input_short_side=128).network_size((480, 640)) == (128, 176)


def test_pca_colours_are_stable_across_frames(embedded: FlowFeat, photo: np.ndarray, tmp_path: Path) -> None:
    predictor = Predictor(embedded, device="cpu")
    first = predictor.predict(photo)
    pca = FeaturePCA.fit(first, n_components=8)
    colours = pca.colorize(first)
    assert colours.shape == (1, 240, 320, 3) and colours.dtype == np.uint8
    shifted = predictor.predict(np.roll(photo, 8, axis=1))
    # The same basis maps the same content to the same colours (away from the wrapped border).
    moved = pca.colorize(shifted)[:, :, 40:-40].astype(int)
    assert np.abs(moved - colours[:, :, 32:-48].astype(int)).mean() < 12
    refitted = FeaturePCA.fit(shifted, n_components=8)
    assert not torch.allclose(refitted.basis, pca.basis)
    pca.save(tmp_path / "basis.safetensors")
    assert np.array_equal(FeaturePCA.load(tmp_path / "basis.safetensors").colorize(first), colours)
    assert pca.project(first).shape == (1, 8, 240, 320)


def test_shipped_default_loads_trained_decoder(photo: np.ndarray) -> None:
    from flowfeat_core.hub.checkpoint import read_checkpoint_metadata
    from flowfeat_core.hub.embedded import EMBEDDED_DECODER

    model = load_model("default")
    _, provenance = read_checkpoint_metadata(EMBEDDED_DECODER)
    assert provenance["steps"] > 0 and provenance["method"] == "motion-profile distillation"
    fresh = FlowFeat.embedded_default()
    assert not torch.equal(model.decoder.norm.norm.weight, fresh.decoder.norm.norm.weight)
    for key, value in fresh.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    features = Predictor(model, device="cpu").predict(photo)
    assert features.shape == (1, 128, 240, 320) and torch.isfinite(features).all()


def test_cpu_inference_threads_leave_a_core_free() -> None:
    cores = available_cores()
    assert cpu_inference_threads() == max(1, cores - 1)
    assert cpu_inference_threads(3) == 3
    with pytest.raises(ValueError, match=">= 0"):
        cpu_inference_threads(-1)


def test_garbled_weights_behind_an_intact_header_are_refused_at_load(embedded: FlowFeat,
                                                                      tmp_path: Path) -> None:
    """Such a file passed every structural check; then every frame failed in the node
    (``linalg.svd ... non-finite``) while /diagnostics said OK."""
    good = save_checkpoint(tmp_path / "good.safetensors", embedded)
    raw = bytearray(good.read_bytes())
    data_start = 8 + int.from_bytes(raw[:8], "little")
    raw[data_start:] = random.Random(1).randbytes(len(raw) - data_start)
    garbled = tmp_path / "garbled.safetensors"
    garbled.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"garbled\.safetensors: \d+ weight tensors hold NaN"):
        load_model(garbled)
    huge = FlowFeat(embedded.config, pretrained_encoder=False)
    huge.load_state_dict(embedded.state_dict())
    with torch.no_grad():
        for parameter in huge.decoder.parameters():
            parameter.fill_(3e38)  # finite, but the features overflow
    overflowing = save_checkpoint(tmp_path / "overflowing.safetensors", huge)
    with pytest.raises(CheckpointError, match="non-finite features"):
        load_model(overflowing)
