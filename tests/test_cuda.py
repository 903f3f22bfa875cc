"""Every inference path on a CUDA GPU against eager fp32 on the CPU: eager and compiled PyTorch at
fp32/bf16/fp16, ONNX Runtime with the CUDA or TensorRT providers, batching, and the perception
node's model on the GPU. Marked ``cuda``: skipped with the reason on machines without a GPU (CI),
which conftest lists apart instead of failing the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from flowfeat_core.hub.loading import load_model
from flowfeat_core.inference.backends import BackendError
from flowfeat_core.inference.numerics import TOLERANCE
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.registry import model_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU; this machine has none (run on a GPU machine)"),
]
SIZE = (240, 320)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def cpu_features(photo) -> torch.Tensor:
    """The reference: eager fp32 on the CPU."""
    return Predictor(load_model("default"), device="cpu", input_hw=SIZE).predict(photo)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest absolute error over the largest value, as the backends' load check measures it."""
    return float((got.cpu() - want).abs().max() / want.abs().max())


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("backend", ["torch", "torch-compile"])
def test_pytorch_backends_on_cuda_match_cpu_fp32(photo, cpu_features, backend, precision) -> None:
    predictor = Predictor(load_model("default"), device="cuda", precision=precision, input_hw=SIZE,
                          backend=backend)
    features = predictor.predict(photo)
    assert features.device.type == "cuda" and features.dtype == torch.float32
    assert relative_error(features, cpu_features) <= TOLERANCE[precision]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_on_cuda_matches_cpu_fp32_or_names_the_missing_provider(
        photo, cpu_features, tmp_path: Path, precision) -> None:
    import onnxruntime

    gpu_providers = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
    if not gpu_providers & set(onnxruntime.get_available_providers()):
        with pytest.raises(BackendError, match="no CUDA or TensorRT provider"):
            Predictor(load_model("default"), device="cuda", precision=precision,
                      backend="onnxruntime", cache_dir=tmp_path)
        return
    predictor = Predictor(load_model("default"), device="cuda", precision=precision, input_hw=SIZE,
                          backend="onnxruntime", cache_dir=tmp_path)
    assert relative_error(predictor.predict(photo), cpu_features) <= TOLERANCE[precision]


def test_vit_model_on_cuda_batches_like_single_frames(photo) -> None:
    torch.manual_seed(0)
    model = FlowFeat(model_config("dinov2_vits14"))
    predictor = Predictor(model, device="cuda", precision="bf16", input_hw=(224, 224))
    flipped = np.ascontiguousarray(photo[:, ::-1])
    batch = predictor.predict([photo, flipped])
    single = predictor.predict(flipped)
    assert batch.shape == (2, 128, 224, 224)
    assert relative_error(batch[1:], single.cpu()) <= TOLERANCE["bf16"]
