"""``python -m flowfeat_core.bench``: FlowFeat inference speed per configuration.

Each configuration runs in its own process (so peak memory is its own) and reports the median
latency of batch-1 forward passes, frames/s, peak memory, and the encoder/decoder split. Weights
are random for the ViT configurations (timing does not depend on them); the embedded default
uses its real weights.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from flowfeat_core.inference.device import AUTOCAST_DTYPES, available_cores
from flowfeat_core.models.config import ModelConfig
from flowfeat_core.models.flowfeat import FlowFeat


@dataclass(frozen=True)
class BenchConfig:
    """One row of the table."""

    name: str
    model: str  # "embedded" or a released ViT name
    height: int
    width: int
    precision: str = "fp32"
    channels_last: bool = True


CONFIGS = {
    config.name: config
    for config in (
        BenchConfig("embedded-320x240-fp32", "embedded", 240, 320),
        BenchConfig("embedded-320x240-bf16", "embedded", 240, 320, "bf16"),
        BenchConfig("dinov2_vits14-224-fp32-nchw", "dinov2_vits14", 224, 224, channels_last=False),
        BenchConfig("dinov2_vits14-224-fp32", "dinov2_vits14", 224, 224),
        BenchConfig("dinov2_vits14-224-bf16", "dinov2_vits14", 224, 224, "bf16"),
    )
}


def _build(config: BenchConfig) -> FlowFeat:
    torch.manual_seed(0)
    if config.model == "embedded":
        from flowfeat_core.hub.embedded import load_embedded_default

        return load_embedded_default()
    return FlowFeat(ModelConfig.for_encoder(config.model))


def _median_ms(function: Callable[[], object], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(config: BenchConfig, runs: int, warmup: int, device: str) -> dict:
    """Time one configuration in this process."""
    model = _build(config).eval().to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    images = torch.randn(1, 3, config.height, config.width, device=device).contiguous(
        memory_format=memory_format
    )
    dtype = AUTOCAST_DTYPES[config.precision]
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else lambda: None

    def run(function: Callable[[], object]) -> Callable[[], object]:
        def timed() -> object:
            with (
                torch.inference_mode(),
                torch.autocast(device.split(":")[0], dtype=dtype, enabled=bool(dtype)),
            ):
                result = function()
            synchronize()
            return result

        return timed

    with torch.inference_mode():
        multiscale, _ = model.encode(images)
    size = (config.height, config.width)
    total = _median_ms(run(lambda: model(images)), runs, warmup)
    encoder = _median_ms(run(lambda: model.encode(images)), runs, warmup)
    decoder = _median_ms(run(lambda: model.decode(multiscale, size)), runs, warmup)
    with torch.inference_mode():
        reference = model(images)[1]  # fp32: the model is never cast, only autocast below
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=bool(dtype)):
            output = model(images)[1].float()
    relative_error = ((output - reference).norm() / reference.norm()).item()
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "config": config.name,
        "latency_ms": total,
        "fps": 1000 / total,
        "encoder_ms": encoder,
        "decoder_ms": decoder,
        "peak_mb": peak_mb,
        "rel_error_vs_fp32": relative_error,
    }


def machine_description(device: str) -> str:
    """CPU/GPU model, cores, threads, torch version."""
    if device.startswith("cuda"):
        processor = torch.cuda.get_device_name(torch.device(device))
    else:
        processor = _cpu_model()
    return (
        f"{processor}; {torch.get_num_threads()} torch threads on {available_cores()} cores; "
        f"torch {torch.__version__}; Python {platform.python_version()}"
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    """Print the table (or, with --one, one configuration's JSON row)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure(CONFIGS[args.one], args.runs, args.warmup, args.device)))
        return 0
    print(f"machine: {machine_description(args.device)}; batch 1; median of {args.runs} runs")
    columns = ("ms", "fps", "encoder", "decoder", "peak MB", "rel err")
    print(f"{'configuration':32} " + " ".join(f"{column:>8}" for column in columns))
    for name in args.configs:
        command = [sys.executable, "-m", "flowfeat_core.cli.bench", "--one", name, "--runs", str(args.runs),
                   "--warmup", str(args.warmup), "--device", args.device]  # fmt: skip
        if args.threads:
            command += ["--threads", str(args.threads)]
        row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(
            f"{name:32} {row['latency_ms']:8.1f} {row['fps']:8.2f} {row['encoder_ms']:8.1f} "
            f"{row['decoder_ms']:8.1f} {row['peak_mb']:8.0f} {row['rel_error_vs_fp32']:8.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
