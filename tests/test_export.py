"""ONNX export as users run it (``python -m flowfeat_core.export``): the default model at a fixed
size, with dynamic height/width, a ViT model (random weights), fp16, and the failing check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from flowfeat_core.export.onnx_export import OUTPUT_NAMES
from flowfeat_core.hub.checkpoint import save_checkpoint
from flowfeat_core.hub.loading import load_model
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.registry import model_config

pytestmark = pytest.mark.slow  # minutes of training or exporting on the 2-core machine


def run_export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowfeat_core.export", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_default_model_exports_with_metadata_and_matches_pytorch(tmp_path: Path) -> None:
    out = tmp_path / "default.onnx"
    result = run_export("--out", str(out), "--height", "96", "--width", "128")
    assert result.returncode == 0, result.stderr
    assert "ONNX Runtime vs PyTorch fp32 at 96x128: encoder: max abs" in result.stdout
    model = onnx.load(str(out))
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    default = load_model("default")
    assert ModelConfig.from_dict(json.loads(metadata["flowfeat_config"])) == default.config
    assert json.loads(metadata["mean"]) == list(default.config.mean)
    assert metadata["size_multiple"] == str(default.size_multiple)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)


def test_dynamic_export_runs_at_other_sizes_and_batches(tmp_path: Path) -> None:
    out = tmp_path / "dynamic.onnx"
    result = run_export("--out", str(out), "--height", "64", "--width", "96", "--dynamic")
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    images = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    (features,) = session.run(["features"], {"image": images.numpy()})
    with torch.inference_mode():
        want = load_model("default").eval()(images)[1].numpy()
    assert features.shape == want.shape == (2, 128, 96, 160)
    assert np.abs(features - want).max() < 1e-3


def test_vit_checkpoint_exports_at_a_fixed_size_only(tmp_path: Path) -> None:
    """A DINOv2 ViT-S/14 FlowFeat with random weights (the released architecture): fp16 at a fixed
    size passes; fp32 with --dynamic passes its check at the traced size and is refused at the
    second, since the position embeddings are resampled while tracing."""
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "vit.safetensors",
                                 FlowFeat(model_config("dinov2_vits14")))
    fixed = run_export("--checkpoint", str(checkpoint), "--out", str(tmp_path / "vit16.onnx"),
                       "--height", "56", "--width", "84", "--precision", "fp16")
    assert fixed.returncode == 0, fixed.stderr
    assert "ONNX Runtime vs PyTorch fp32 at 56x84" in fixed.stdout
    dynamic = run_export("--checkpoint", str(checkpoint), "--out", str(tmp_path / "dyn.onnx"),
                         "--height", "56", "--width", "84", "--dynamic")
    assert dynamic.returncode == 1 and "ONNX Runtime vs PyTorch fp32 at 56x84: encoder" in dynamic.stdout
    assert "error: ONNX Runtime cannot run the graph at 84x98" in dynamic.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(("args", "message"), [
    (("--height", "64", "--width", "96", "--tolerance", "0"), "error: verification failed: encoder"),
    (("--height", "100", "--width", "96"), "must be multiples of the model's size multiple"),
])
def test_export_failures_are_one_error_line(tmp_path: Path, args, message) -> None:
    result = run_export("--out", str(tmp_path / "x.onnx"), *args)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr.strip().splitlines()[-1]
