"""The ``aot-inductor`` backend: the model compiled ahead of time by inductor (``torch.export``
then ``aoti_compile_and_package``) into a ``.pt2`` package per input shape, cached on disk.

Compiling runs in a child process: the compiler is Python-heavy, and in the serving process it
held the GIL so much that eager inference on the other thread fell from 7 to 1 frame/s while it
compiled. Loading a cached package takes milliseconds, so a restart serves compiled at once.
Packages embed the weights: the cache key is the model's fingerprint, precision, shape, memory
layout and torch version, so another model or library never loads a stale one; each new
package is still checked against eager fp32 on its first input.

    python -m flowfeat_core.inference.aot_inductor CHECKPOINT OUT.pt2 --shape 1,3,240,320
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from flowfeat_core.error_text import first_line
from flowfeat_core.home import flowfeat_home
from flowfeat_core.hub.checkpoint import save_checkpoint
from flowfeat_core.inference.backends import (
    BackendError,
    ReducedPrecisionForward,
    Runner,
    check_new_engine,
    use_inductor_cache,
)
from flowfeat_core.inference.batch_norm_folding import fold_batch_norms
from flowfeat_core.inference.device import AUTOCAST_DTYPES, PRECISIONS, Precision
from flowfeat_core.models.fingerprint import model_fingerprint
from flowfeat_core.models.flowfeat import FlowFeat

#: Packages are compiled from the model with its batch norms folded (``fold_batch_norms``);
#: the name keeps packages built before that from being served instead.
PACKAGE_FORMAT = "bnfold"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
#: Longest a package compile may take (a cold compile of the default model: about a minute on
#: 2 CPU cores).
COMPILE_TIMEOUT_S = 1800.0


def package_dir() -> Path:
    """Compiled packages, per torch version, under ``flowfeat_home()``."""
    return flowfeat_home() / "compiled" / f"torch-{torch.__version__}"


def _layout(images: torch.Tensor) -> torch.memory_format:
    channels_last = images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


def package_path(model: FlowFeat, precision: str, images: torch.Tensor) -> Path:
    """Where the package of ``model`` for inputs like ``images`` is cached."""
    layout = "cl" if _layout(images) == torch.channels_last else "nchw"
    shape = "x".join(str(side) for side in images.shape)
    return package_dir() / (f"flowfeat-{model_fingerprint(model)}-{precision}-{shape}-{layout}-"
                            f"{images.device.type}-{PACKAGE_FORMAT}.pt2")


def compile_package(model: FlowFeat, precision: Precision, images: torch.Tensor, out: Path,
                    niceness: int = 0) -> None:
    """Compile ``model`` for inputs like ``images`` into ``out`` in a child process at
    ``niceness``; BackendError with the child's last error line when it fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    layout = "channels-last" if _layout(images) == torch.channels_last else "contiguous"
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as folder:
        checkpoint = save_checkpoint(Path(folder) / "model.safetensors", model)
        command = [sys.executable, "-m", "flowfeat_core.inference.aot_inductor", str(checkpoint),
                   str(out), "--shape", ",".join(str(side) for side in images.shape),
                   "--precision", precision, "--layout", layout, "--device", str(images.device),
                   "--niceness", str(niceness)]
        try:  # no preexec_fn: it can deadlock a process that runs threads
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise BackendError(f"aot-inductor compile did not finish in {COMPILE_TIMEOUT_S:.0f} "
                               "s") from error
    if result.returncode != 0 or not out.is_file():
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise BackendError(f"aot-inductor compile failed (exit {result.returncode}): "
                           f"{lines[-1] if lines else 'no error output'}")


def aot_inductor_runner(model: FlowFeat, device: torch.device, precision: Precision,
                        niceness: int = 0) -> Runner:
    """Runs cached packages, compiling (blocking, in a child at ``niceness``) the package of each
    new input shape first; each new package is checked against eager fp32 on that input and
    refused (BackendError) when it disagrees."""
    packages: dict[tuple[int, ...], object] = {}

    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (*images.shape, _layout(images) == torch.channels_last)
        new = key not in packages
        if new:
            path = package_path(model, precision, images)
            if not path.is_file():
                compile_package(model, precision, images, path, niceness)
            try:
                packages[key] = torch._inductor.aoti_load_package(str(path))
            except Exception as error:  # a damaged package: refused, rebuilt next time
                path.unlink(missing_ok=True)
                raise BackendError(f"aot-inductor package {path.name} does not load: "
                                   f"{type(error).__name__}: {first_line(error)}") from error
        with torch.inference_mode():
            encoder, dense = packages[key](images)
        outputs = (encoder.float(), dense.float())
        if new:
            check_new_engine("aot-inductor", packages, key, outputs, model, images, precision)
        return outputs

    return run


def _end_with_parent() -> None:
    """Linux: SIGTERM this compiler when the process that started it ends (a node stopped
    mid-build leaves no compiler running behind it; the next start compiles again)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return  # not Linux: the compiler finishes on its own
    if os.getppid() == 1:  # the parent ended before prctl took effect
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    """Child process: export and compile one package (written atomically)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--shape", required=True, help="B,C,H,W")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--layout", choices=("channels-last", "contiguous"), default="contiguous")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--niceness", type=int, default=0, help="added to this process's")
    args = parser.parse_args(argv)
    _end_with_parent()
    if args.niceness:
        os.nice(args.niceness)
    from flowfeat_core.hub.loading import load_model

    use_inductor_cache()
    device = torch.device(args.device)
    layout = torch.channels_last if args.layout == "channels-last" else torch.contiguous_format
    model = fold_batch_norms(load_model(args.checkpoint).eval().to(device, memory_format=layout))
    dtype = AUTOCAST_DTYPES[args.precision]
    forward = ReducedPrecisionForward(model, device, dtype) if dtype else model
    shape = [int(side) for side in args.shape.split(",")]
    sample = torch.zeros(shape, device=device).contiguous(memory_format=layout)
    out = Path(args.out)
    partial = out.with_name(f".partial-{os.getpid()}-{out.name}")  # must end in .pt2
    with torch.inference_mode(False), torch.no_grad():
        exported = torch.export.export(forward, (sample,))
        torch._inductor.aoti_compile_and_package(exported, package_path=str(partial))
    partial.replace(out)  # a half-written package is never loaded
    return 0


if __name__ == "__main__":
    sys.exit(main())
