"""``python -m flowfeat_core.bench``: FlowFeat inference speed per model, backend and precision.

Each configuration runs in its own process (so peak memory and compile caches are its own),
``--repeats`` times, round-robin over the configurations so that drift in the machine's load
hits every row alike,
through the same backend runner the Predictor and the perception node use (inference/backends.py),
and reports: the time to build the backend (compile, ONNX export, engine build, check against
eager) plus its first call (the slowest pass: later passes reuse the ONNX export; inductor keeps
its own cache in /tmp across runs), the median latency of batch-1 forward passes after warm-up, frames/s,
peak memory, and the error of the dense features against eager fp32 in the reference's NCHW
layout on a real photo (relative L2, and the largest absolute error over the largest value, which
is what a backend's load check limits). Weights are random for the ViT models (timing does not
depend on them); the embedded default uses its real weights. The table gives the median over the
repeats of each process's median latency, and the range of those medians: on a shared 2-core
machine one process's median moved by up to 40 % from one pass to the next.

    python -m flowfeat_core.bench --backend all            # every configuration for the device
    python -m flowfeat_core.bench --backend onnxruntime --model default
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flowfeat_core.inference.allocator import retain_freed_memory
from flowfeat_core.inference.backends import BACKENDS
from flowfeat_core.inference.device import machine_summary
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.inference.runners import make_runner
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.models.registry import model_config

#: Benchmarked models and the size each runs at: (model, height, width).
MODELS = {"default": (240, 320), "dinov2_vits14": (224, 224)}
#: Extra sizes for GPU runs (the issue's GPU targets).
CUDA_MODELS = {"default": (480, 640), "dinov2_vits14": (448, 448)}


@dataclass(frozen=True)
class BenchConfig:
    """One row of the table."""

    model: str  # "default" (the embedded model) or an encoder name with random weights
    height: int
    width: int
    backend: str = "torch"
    precision: str = "fp32"
    channels_last: bool = True

    @property
    def name(self) -> str:
        layout = "" if self.channels_last else "-nchw"
        return f"{self.model}-{self.width}x{self.height}-{self.backend}-{self.precision}{layout}"


def configurations(device: str) -> list[BenchConfig]:
    """Every row for ``device``: each model with each backend at each precision it runs."""
    cuda = device.startswith("cuda")
    rows = []
    for model, (height, width) in (CUDA_MODELS if cuda else MODELS).items():
        rows.append(BenchConfig(model, height, width, channels_last=False))  # the reference's layout
        for precision in ("fp32", "bf16", "fp16") if cuda else ("fp32", "bf16"):
            rows.append(BenchConfig(model, height, width, "torch", precision))
            rows.append(BenchConfig(model, height, width, "torch-compile", precision))
            rows.append(BenchConfig(model, height, width, "aot-inductor", precision))
        for precision in ("fp32", "fp16") if cuda else ("fp32",):
            rows.append(BenchConfig(model, height, width, "onnxruntime", precision))
    return rows


def build_model(model: str) -> FlowFeat:
    """The embedded default with its weights, or a ViT model with (seeded) random weights."""
    torch.manual_seed(0)
    if model == "default":
        from flowfeat_core.hub.embedded import load_embedded_default

        return load_embedded_default()
    return FlowFeat(model_config(model))


def photo_batch(model: FlowFeat, height: int, width: int) -> torch.Tensor:
    """The astronaut photo resized to ``height`` x ``width`` and normalised for ``model``."""
    from skimage import data as skimage_data

    # eager fp32 on the CPU: only preprocessing is used, never this predictor's model
    predictor = Predictor(model, device="cpu", input_hw=(height, width), channels_last=False)
    return predictor.preprocess(np.ascontiguousarray(skimage_data.astronaut()))


def median_ms(function: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall time of ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(config: BenchConfig, runs: int, warmup: int, device: str, cache_dir: Path) -> dict:
    """Time one configuration in this process."""
    retain_freed_memory()  # as Predictor does: the rows measure what the node gets
    target = torch.device(device)
    model = build_model(config.model).eval()
    images = photo_batch(model, config.height, config.width)
    with torch.inference_mode():
        reference = model(images)[1]  # eager fp32, NCHW, on the CPU: the row everything is held to
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(target, memory_format=memory_format)
    images = images.to(target).contiguous(memory_format=memory_format)
    synchronize = torch.cuda.synchronize if target.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    runner = make_runner(config.backend, model, target, config.precision, cache_dir)
    output = runner(images)[1]
    synchronize()
    build_s = time.perf_counter() - start

    def forward() -> None:
        runner(images)
        synchronize()

    latency = median_ms(forward, runs, warmup)
    difference = output.float().cpu() - reference
    if target.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(target) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "config": config.name,
        "build_s": build_s,
        "latency_ms": latency,
        "fps": 1000 / latency,
        "peak_mb": peak_mb,
        "rel_l2": float(difference.norm() / reference.norm()),
        "max_rel": float(difference.abs().max() / reference.abs().max()),
    }


def _row_in_subprocess(config: BenchConfig, args: argparse.Namespace, cache_dir: Path) -> dict:
    command = [sys.executable, "-m", "flowfeat_core.cli.bench", "--one", json.dumps(config.__dict__),
               "--runs", str(args.runs), "--warmup", str(args.warmup), "--device", args.device,
               "--cache-dir", str(cache_dir)]  # fmt: skip
    if args.threads:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return {"config": config.name, "failed": lines[-1] if lines else f"exit {result.returncode}"}
    return json.loads(result.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Print the table (or, with --one, one configuration's JSON row)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="all", choices=["all", *BACKENDS])
    parser.add_argument("--model", default="all", choices=["all", *MODELS])
    parser.add_argument("--precision", default="all", choices=["all", "fp32", "bf16", "fp16"])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per process")
    parser.add_argument("--repeats", type=int, default=3, help="processes per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--cache-dir", type=Path, help="ONNX/engine cache (default: a temporary one)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        row = measure(BenchConfig(**json.loads(args.one)), args.runs, args.warmup, args.device,
                      args.cache_dir)
        print(json.dumps(row))
        return 0
    rows = [config for config in configurations(args.device)
            if args.backend in ("all", config.backend) and args.model in ("all", config.model)
            and args.precision in ("all", config.precision)]
    results: dict[str, list[dict]] = {config.name: [] for config in rows}
    with tempfile.TemporaryDirectory(prefix="flowfeat-bench-") as scratch:
        for repeat in range(args.repeats):
            for config in rows:
                row = _row_in_subprocess(config, args, args.cache_dir or Path(scratch))
                results[config.name].append(row)
                status = row.get("failed") or f"{row['latency_ms']:.1f} ms"
                print(f"pass {repeat + 1}/{args.repeats} {config.name}: {status}", file=sys.stderr,
                      flush=True)
    print(f"machine: {machine_summary(torch.device(args.device))}; batch 1; per process the median of "
          f"{args.runs} runs after {args.warmup} warm-up, {args.repeats} processes per row; error of "
          f"the dense features vs eager fp32 NCHW on a real photo")
    columns = ("build s", "ms", "range ms", "fps", "peak MB", "rel L2", "max rel")
    print(f"{'configuration':42} " + " ".join(f"{column:>11}" for column in columns))
    for name, measured in results.items():
        failed = [row["failed"] for row in measured if "failed" in row]
        if failed:
            print(f"{name:42} failed: {failed[0]}")
            continue
        latencies = [row["latency_ms"] for row in measured]
        latency = statistics.median(latencies)
        spread = f"{min(latencies):.1f}-{max(latencies):.1f}"
        row = measured[0]  # errors are deterministic
        # build: the slowest pass, i.e. the one that exported or compiled without a cache
        print(f"{name:42} {max(r['build_s'] for r in measured):11.1f} {latency:11.1f} "
              f"{spread:>11} {1000 / latency:11.1f} {max(r['peak_mb'] for r in measured):11.0f} "
              f"{row['rel_l2']:11.1e} {row['max_rel']:11.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
