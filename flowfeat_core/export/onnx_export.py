"""ONNX export of a FlowFeat model, with its configuration and input normalisation as ONNX metadata,
and a check that ONNX Runtime reproduces PyTorch on the same input.

The graph is the model's ``forward``: input ``image`` (B x 3 x H x W, RGB already normalised with
the ``mean``/``std`` in the metadata), outputs ``encoder`` (coarse tokens) and ``features``
(B x fdim x H x W, per-pixel L2-normalised). With ``dynamic`` the batch, height and width are
symbolic; height and width must stay multiples of the model's ``size_multiple`` (the metadata
says which), since padding to a multiple does not trace into a dynamic graph. Only the batch is
symbolic with ``dynamic_batch``. A ViT's position embeddings are resampled to the export size
while tracing, so its graph runs at that size only: the CLI's check at a second size refuses it.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flowfeat_core.error_text import first_line
from flowfeat_core.inference.numerics import ONNX_PRECISIONS, TOLERANCE, relative_error
from flowfeat_core.models.flowfeat import FlowFeat

INPUT_NAME = "image"
OUTPUT_NAMES = ("encoder", "features")


class ExportError(ValueError):
    """The export or its verification failed; the message says which and the numbers."""


@dataclass(frozen=True)
class Verification:
    """ONNX Runtime against PyTorch on one input per output: the worst absolute and relative
    error (what the tolerance applies to) and, for context, the mean absolute error."""

    max_abs: dict[str, float]
    max_rel: dict[str, float]
    mean_abs: dict[str, float]
    tolerance: float

    @property
    def passed(self) -> bool:
        return all(value <= self.tolerance for value in self.max_rel.values())

    def summary(self) -> str:
        parts = [f"{name}: max abs {self.max_abs[name]:.3g}, rel {self.max_rel[name]:.3g}, "
                 f"mean abs {self.mean_abs[name]:.3g}" for name in self.max_abs]
        return f"{'; '.join(parts)} (tolerance rel {self.tolerance:g})"


def export_metadata(model: FlowFeat, precision: str, dynamic: bool,
                    dynamic_batch: bool = False) -> dict[str, str]:
    """What a runtime needs besides the graph: configuration, normalisation, size rules."""
    config = model.config
    return {
        "flowfeat_config": json.dumps(config.to_dict()),
        "mean": json.dumps(list(config.mean)),
        "std": json.dumps(list(config.std)),
        "input": "image: B x 3 x H x W float, RGB scaled to [0, 1] then (x - mean) / std",
        "size_multiple": str(model.size_multiple),
        "dynamic_hw": str(dynamic).lower(),
        "dynamic_batch": str(dynamic or dynamic_batch).lower(),
        "precision": precision,
    }


def export_onnx(model: FlowFeat, path: Path, height: int, width: int, precision: str = "fp32",
                dynamic: bool = False, dynamic_batch: bool = False) -> Path:
    """Write ``model`` as ONNX to ``path`` (traced at ``height`` x ``width``)."""
    if precision not in ONNX_PRECISIONS:
        raise ExportError(f"precision must be one of {list(ONNX_PRECISIONS)}, got {precision!r}")
    multiple = model.size_multiple
    if height % multiple or width % multiple:
        raise ExportError(f"height and width must be multiples of the model's size multiple "
                          f"{multiple}, got {height}x{width}")
    # a copy: converting the caller's model to fp16 and back would round its weights
    model = copy.deepcopy(model).eval().to(device="cpu",
                                           dtype=torch.float16 if precision == "fp16" else torch.float32)
    for tensor in model.parameters():  # a channels-last copy (as Predictor keeps) does not trace
        tensor.data = tensor.data.contiguous()
    # batch 2 when dynamic: an example of 1 lets the tracer specialise the batch to 1
    example = torch.zeros(2 if dynamic or dynamic_batch else 1, 3, height, width,
                          dtype=next(model.parameters()).dtype)
    shapes = None
    if dynamic or dynamic_batch:
        shapes = {"images": {0: torch.export.Dim("batch", min=1, max=64)}}
    if dynamic:
        rows, cols = torch.export.Dim("rows", min=1, max=4096 // multiple), torch.export.Dim(
            "cols", min=1, max=4096 // multiple)
        shapes["images"].update({2: multiple * rows, 3: multiple * cols})
    logging.getLogger("torch.onnx").setLevel(logging.WARNING)
    try:
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT_NAME],
                                    output_names=list(OUTPUT_NAMES), dynamic_shapes=shapes,
                                    verbose=False)
    except Exception as error:  # the exporter fails in many ways; say what was asked
        kind = "dynamic-size" if dynamic else f"{height}x{width}"
        raise ExportError(f"ONNX export ({kind}, {precision}) failed: "
                          f"{type(error).__name__}: {first_line(error)}") from error
    for key, value in export_metadata(model, precision, dynamic, dynamic_batch).items():
        program.model.metadata_props[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    return path


def verify_onnx(model: FlowFeat, path: Path, images: torch.Tensor,
                tolerance: float | None = None) -> Verification:
    """Run ONNX Runtime (CPU) and PyTorch fp32 on the same normalised ``images``."""
    import onnxruntime  # optional dependency: only export needs it

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    precision = session.get_modelmeta().custom_metadata_map.get("precision", "fp32")
    feed = images.numpy().astype(np.float16 if precision == "fp16" else np.float32)
    try:
        outputs = session.run(list(OUTPUT_NAMES), {INPUT_NAME: feed})
    except Exception as error:  # onnxruntime's own error types; say where it failed
        raise ExportError(f"ONNX Runtime cannot run the graph at {images.shape[-2]}x"
                          f"{images.shape[-1]}: {first_line(error)}") from error
    with torch.inference_mode():
        reference = model.float().eval()(images.float())
    max_abs, max_rel, mean_abs = {}, {}, {}
    for name, got, want in zip(OUTPUT_NAMES, outputs, reference, strict=True):
        want = want.numpy()
        if got.shape != want.shape:
            raise ExportError(f"{name}: ONNX Runtime gives shape {got.shape}, PyTorch {want.shape}")
        error = np.abs(got.astype(np.float32) - want)
        max_abs[name] = float(error.max())
        max_rel[name] = relative_error(got, want)
        mean_abs[name] = float(error.mean())
    return Verification(max_abs, max_rel, mean_abs, tolerance if tolerance is not None
                        else TOLERANCE[precision])
