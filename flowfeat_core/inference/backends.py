"""Ways to run a FlowFeat forward pass: eager PyTorch, ``torch.compile``, inductor's ahead-of-time
packages (aot_inductor.py), or ONNX Runtime (CPU, and the CUDA / TensorRT execution providers
when installed, with an engine cache). A non-eager backend
is checked against eager fp32 PyTorch on a fixed input when it is built; one that disagrees is
refused with the numbers, so a silently wrong engine never serves. ``auto`` (auto_backend.py)
serves eager at once and swaps in the fastest of these once it is built and checked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flowfeat_core.error_text import first_line
from flowfeat_core.export.onnx_export import OUTPUT_NAMES, export_onnx
from flowfeat_core.home import flowfeat_home
from flowfeat_core.inference.batch_norm_folding import fold_batch_norms
from flowfeat_core.inference.device import AUTOCAST_DTYPES, Precision
from flowfeat_core.inference.numerics import ONNX_PRECISIONS, TOLERANCE, check_input, relative_error
from flowfeat_core.models.fingerprint import model_fingerprint
from flowfeat_core.models.flowfeat import FlowFeat, pad_to_multiple
from flowfeat_core.models.registry import encoder_entry

BACKENDS = ("torch", "torch-compile", "aot-inductor", "onnxruntime")
#: Not a backend of its own: eager first, then the fastest of BACKENDS this machine builds.
AUTO = "auto"
BACKEND_CHOICES = (AUTO, *BACKENDS)
#: Largest relative error (max |got - eager fp32| / max |eager fp32|) a backend or an ONNX export
#: may show, by precision: reduced precisions are compared with fp32, so they get their rounding's
#: share. fp16 keeps 11 significant bits and its rounding accumulates through the encoder: the
#: default model's ONNX features on the CPU measured 1.5e-2 at 96x128 but 0.111 at 240x320 (mean
#: absolute error 2.7e-3), which the check refuses.
#: ONNX files (and TensorRT engines) are cached here unless FLOWFEAT_BACKEND_CACHE says otherwise.
DEFAULT_CACHE = Path(os.environ.get("FLOWFEAT_BACKEND_CACHE", flowfeat_home() / "backends"))
Runner = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class BackendError(ValueError):
    """A backend cannot be built here, or disagrees with eager PyTorch; the message says why."""


class ReducedPrecisionForward(nn.Module):
    """``model``'s forward under bf16/fp16 autocast: the decoder always, the encoder only where
    its registry entry allows (``EncoderEntry.autocast_encoder``); outputs are float32."""

    def __init__(self, model: FlowFeat, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.device_type = device.type
        self.dtype = dtype
        self.autocast_encoder = encoder_entry(model.config.encoder).autocast_encoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        autocast = torch.autocast(self.device_type, dtype=self.dtype)
        with autocast if self.autocast_encoder else nullcontext():
            multiscale, encoder = self.model.encode(images)
        with autocast:
            dense = self.model.decode(multiscale, images)
        return encoder.float(), dense.float()


def torch_runner(model: FlowFeat, device: torch.device, precision: Precision,
                 compile_model: bool = False) -> Runner:
    """Eager PyTorch, or with ``compile_model`` ``torch.compile`` of the same forward, compiled on
    the first call at each input size (a camera stream keeps one). Static shapes: with
    ``dynamic=True`` inductor fails on the model's padding arithmetic (torch 2.14:
    "TensorReferenceAnalysis has no attribute python_mod"). Batch norms are folded into their
    convolutions first (``fold_batch_norms``)."""
    dtype = AUTOCAST_DTYPES[precision]
    model = fold_batch_norms(model)
    forward: nn.Module = ReducedPrecisionForward(model, device, dtype) if dtype else model
    if compile_model:
        use_inductor_cache()
        forward = torch.compile(forward, dynamic=False)

    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            encoder, dense = forward(images)
        return encoder.float(), dense.float()

    return run


def inductor_cache_dir() -> Path:
    """Inductor's compiled kernels, per torch version, under ``flowfeat_home()`` (inductor's own
    default is in /tmp, which a reboot empties, so every start would compile for a minute).
    Inductor keys each entry by graph, shapes, strides, config and its own sources; the weights
    are graph inputs, so a retrained model reuses the kernels and still computes with its own
    weights, and every build is checked against eager anyway."""
    return flowfeat_home() / "inductor" / f"torch-{torch.__version__}"


def use_inductor_cache() -> None:
    """Point inductor at ``inductor_cache_dir()`` unless TORCHINDUCTOR_CACHE_DIR names a directory
    of the user's choice. Importing torch's compiler fills the variable in with inductor's /tmp
    default, so that value counts as unset."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or Path(chosen) == Path(default_cache_dir()).absolute():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(inductor_cache_dir())


def model_digest(model: FlowFeat, precision: str) -> str:
    """Identifies an exported graph: the model's fingerprint and the precision."""
    return hashlib.sha256(f"{model_fingerprint(model)}:{precision}".encode()).hexdigest()[:16]


def onnxruntime_providers(device: torch.device, cache_dir: Path, precision: str) -> list:
    """TensorRT, then CUDA, for a CUDA device (those installed); the CPU provider otherwise."""
    import onnxruntime

    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    available = set(onnxruntime.get_available_providers())
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", {
            "device_id": device.index or 0, "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir), "trt_fp16_enable": precision == "fp16"}))
    if "CUDAExecutionProvider" in available:
        providers.append(("CUDAExecutionProvider", {"device_id": device.index or 0}))
    if not providers:
        raise BackendError(f"onnxruntime has no CUDA or TensorRT provider here (available: "
                           f"{sorted(available)}); install onnxruntime-gpu or use device cpu")
    return providers


def onnxruntime_runner(model: FlowFeat, device: torch.device, precision: Precision,
                       cache_dir: Path = DEFAULT_CACHE) -> Runner:
    """ONNX Runtime on exports of ``model`` at each (padded) input size it is given, with a
    symbolic batch: TensorRT builds static engines, and a ViT's graph only runs at the size it
    was traced at. Exports are cached by weights, precision and size;
    each new size's session is checked against eager fp32 on its first input and refused
    (BackendError, the frame not served) when it disagrees."""
    try:
        import onnxruntime
    except ImportError as error:
        raise BackendError("the onnxruntime backend needs the onnxruntime package") from error
    if precision not in ONNX_PRECISIONS:
        raise BackendError(f"the onnxruntime backend runs {' or '.join(ONNX_PRECISIONS)}, not "
                           f"{precision}")
    providers = onnxruntime_providers(device, cache_dir, precision)
    digest = model_digest(model, precision)
    input_dtype = np.float16 if precision == "fp16" else np.float32
    sessions: dict[tuple[int, int], onnxruntime.InferenceSession] = {}

    def session_for(height: int, width: int) -> onnxruntime.InferenceSession:
        path = cache_dir / f"flowfeat-{digest}-{height}x{width}.onnx"
        if not path.is_file():
            partial = path.with_suffix(".partial.onnx")
            export_onnx(model, partial, height, width, precision, dynamic_batch=True)
            partial.replace(path)  # a half-written file is never used
        return onnxruntime.InferenceSession(str(path), providers=providers)

    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = images.shape[-2:]
        # graphs take multiples of the size multiple: pad (and crop the features) as the model's
        # own forward does for other sizes
        padded = pad_to_multiple(images.detach().cpu(), model.size_multiple)
        size = (padded.shape[-2], padded.shape[-1])
        new_size = size not in sessions
        if new_size:
            cache_dir.mkdir(parents=True, exist_ok=True)
            sessions[size] = session_for(*size)
        feed = np.ascontiguousarray(padded.numpy().astype(input_dtype, copy=False))
        encoder, dense = sessions[size].run(list(OUTPUT_NAMES), {"image": feed})
        outputs = (torch.from_numpy(encoder).float().to(device),
                   torch.from_numpy(dense[:, :, :height, :width]).float().to(device))
        if new_size:
            check_new_engine("onnxruntime", sessions, size, outputs, model, images, precision)
        return outputs

    return run


def check_new_engine(backend: str, engines: dict, key: object,
                     outputs: tuple[torch.Tensor, torch.Tensor], model: FlowFeat,
                     images: torch.Tensor, precision: Precision) -> None:
    """The first outputs of a newly built engine (``engines[key]``) against eager fp32: one that
    disagrees is forgotten, so it never serves and the next call builds it again, and its
    BackendError raised."""
    try:
        compare_with_eager(backend, outputs, model, images, precision)
    except BackendError:
        del engines[key]
        raise


def check_against_eager(backend: str, runner: Runner, model: FlowFeat, device: torch.device,
                        precision: Precision) -> float:
    """Largest relative error of ``runner`` against eager fp32 on a fixed input; BackendError
    above ``TOLERANCE[precision]``."""
    images = check_input(model.size_multiple, device)
    try:
        got = runner(images)
    except BackendError:
        raise
    except Exception as error:
        raise BackendError(f"{backend} backend failed on a test input: {type(error).__name__}: "
                           f"{first_line(error)}") from error
    return compare_with_eager(backend, got, model, images, precision)


def compare_with_eager(backend: str, got: tuple[torch.Tensor, torch.Tensor], model: FlowFeat,
                       images: torch.Tensor, precision: Precision) -> float:
    """Largest relative error (max abs error / max abs value) of a backend's (encoder, dense)
    outputs for ``images`` against eager fp32; BackendError above ``TOLERANCE[precision]``."""
    with torch.inference_mode():  # the model itself, not a serving copy with folded batch norms
        want = model(images)
    worst = 0.0
    for name, a, b in zip(("encoder", "features"), got, want, strict=True):
        error = relative_error(a.detach().float().cpu().numpy(), b.detach().float().cpu().numpy())
        worst = max(worst, error)
        if not error <= TOLERANCE[precision]:
            raise BackendError(f"{backend} ({precision}) disagrees with eager PyTorch fp32 at "
                               f"{images.shape[-2]}x{images.shape[-1]}: {name} relative error "
                               f"{error:.3g} > {TOLERANCE[precision]:g}")
    return worst
