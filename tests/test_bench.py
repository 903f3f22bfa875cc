"""``flowfeat_bench`` as users run it: one process per configuration, the table with the error
against eager fp32 NCHW (zero for that row itself, tiny for channels-last fp32)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowfeat_core.cli.bench import configurations

pytestmark = pytest.mark.slow  # minutes of training or exporting on the 2-core machine


def test_bench_prints_a_row_per_configuration_with_its_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flowfeat_core.bench", "--model", "default", "--backend", "torch",
         "--precision", "fp32", "--repeats", "1", "--runs", "2", "--warmup", "1"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert set(rows) == {"default-320x240-torch-fp32-nchw", "default-320x240-torch-fp32"}
    # served with folded batch norms: rounding away from the model itself, no more
    assert 0.0 < float(rows["default-320x240-torch-fp32-nchw"][-2]) < 1e-5
    assert float(rows["default-320x240-torch-fp32"][-2]) < 1e-4  # rel L2 of channels-last
    assert float(rows["default-320x240-torch-fp32"][2]) > 0  # ms


def test_cuda_rows_add_fp16_and_the_gpu_sizes() -> None:
    cpu, cuda = configurations("cpu"), configurations("cuda")
    assert {c.precision for c in cpu} == {"fp32", "bf16"}
    assert {c.precision for c in cuda} == {"fp32", "bf16", "fp16"}
    assert {(c.model, c.height, c.width) for c in cuda} == {("default", 480, 640),
                                                           ("dinov2_vits14", 448, 448)}
    assert {c.backend for c in cpu} == {"torch", "torch-compile", "aot-inductor", "onnxruntime"}
