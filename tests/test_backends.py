"""Inference backends against eager PyTorch: ONNX Runtime reproduces it and caches its export; a
backend that disagrees, an unknown backend and an unsupported precision are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from flowfeat_core.hub.loading import load_model
from flowfeat_core.inference.backends import (
    BackendError,
    check_against_eager,
    model_digest,
    onnxruntime_runner,
)
from flowfeat_core.inference.predictor import Predictor


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.mark.slow
def test_onnxruntime_backend_matches_eager_and_reuses_its_exports(tmp_path: Path, photo) -> None:
    eager = Predictor(load_model("default"), device="cpu", input_hw=(120, 160))
    onnx = Predictor(load_model("default"), device="cpu", input_hw=(120, 160),
                     backend="onnxruntime", cache_dir=tmp_path)
    want, got = eager.predict(photo), onnx.predict(photo)
    assert got.shape == want.shape and float((got - want).abs().max()) < 1e-3
    batch = onnx.predict([photo, photo[:, ::-1].copy()])  # symbolic batch, other content
    assert batch.shape[0] == 2
    # one graph per padded size: the load check's 64x64 and the stream's 128x160 (120 padded)
    exports = {path.name: path.stat().st_mtime_ns for path in tmp_path.glob("*.onnx")}
    assert sorted(name.split("-")[-1] for name in exports) == ["128x160.onnx", "64x64.onnx"]
    again = Predictor(load_model("default"), device="cpu", input_hw=(120, 160), backend="onnxruntime",
                      cache_dir=tmp_path)
    assert float((again.predict(photo) - want).abs().max()) < 1e-3
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.glob("*.onnx")} == exports


def test_a_backend_that_disagrees_with_eager_is_refused_with_the_numbers(tmp_path: Path) -> None:
    """An engine built from other weights (as a stale cache would give) must never serve."""
    model = load_model("default").eval()
    other = model.untrained_twin(seed=3).eval()
    wrong = onnxruntime_runner(other, torch.device("cpu"), "fp32", tmp_path)
    with pytest.raises(BackendError, match=r"disagrees with eager PyTorch fp32 at 64x64: \w+ relative error"):
        check_against_eager("onnxruntime", wrong, model, torch.device("cpu"), "fp32")
    # the same graph cached under the model's own name: its first frame at that size refuses it
    (stale,) = tmp_path.glob("flowfeat-*-64x64.onnx")
    stale.rename(tmp_path / f"flowfeat-{model_digest(model, 'fp32')}-64x64.onnx")
    runner = onnxruntime_runner(model, torch.device("cpu"), "fp32", tmp_path)
    with pytest.raises(BackendError, match="disagrees with eager PyTorch fp32 at 64x64"):
        runner(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize(("backend", "precision", "message"), [
    ("tensorrt-direct", "fp32", "backend must be one of"),
    ("onnxruntime", "bf16", "runs fp32 or fp16, not bf16"),
])
def test_unusable_backends_are_refused(tmp_path: Path, backend, precision, message) -> None:
    with pytest.raises(ValueError, match=message):
        Predictor(load_model("default"), device="cpu", precision=precision, backend=backend,
                  cache_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch-compile", "aot-inductor"])
def test_compiled_backends_match_eager(photo, backend: str) -> None:
    """Inductor compiles the default model (C++ on the CPU): torch-compile in this process,
    passing the load check at the stream's size (the check's own size, so it compiles once);
    aot-inductor as a package in a child process, checked on its first frame (the size
    test_auto_backend compiles, so a whole-suite run finds it cached)."""
    side = load_model("default").size_multiple * 4
    eager = Predictor(load_model("default"), device="cpu", input_hw=(side, side))
    compiled = Predictor(load_model("default"), device="cpu", input_hw=(side, side),
                         backend=backend)
    want, got = eager.predict(photo), compiled.predict(photo)
    assert got.shape == want.shape and float((got - want).abs().max()) < 1e-3


def test_bf16_keeps_the_default_encoder_in_fp32(photo) -> None:
    """EfficientNet-Lite0's features do not survive a bf16 encoder (relative L2 error 5.2e-2 on
    this photo); with only the decoder in bf16 the error is 7.2e-3."""
    fp32 = Predictor(load_model("default"), device="cpu", input_hw=(240, 320)).predict(photo)
    bf16 = Predictor(load_model("default"), device="cpu", precision="bf16",
                     input_hw=(240, 320)).predict(photo)
    assert float((bf16 - fp32).norm() / fp32.norm()) < 2e-2
