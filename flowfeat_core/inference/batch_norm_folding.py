"""Inference copies of a model whose batch norms are folded into the convolutions before them.

In eval mode a batch norm is a per-channel scale and shift, so the convolution that feeds it can
absorb it exactly (up to float rounding). Eager PyTorch otherwise makes one more pass over every
feature map of the encoder for it: on the default model (EfficientNet-Lite0, 48 batch norms)
folding cut the eager fp32 forward at 320x240 by 3.5-5.7 ms (6-9 %) on the 2-core Xeon (README,
"Batch norms folded for serving"). The trained model and its checkpoints keep their batch
norms; only the copies that serve frames are folded.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from flowfeat_core.inference.numerics import check_input, relative_error

ModelT = TypeVar("ModelT", bound=nn.Module)
LOGGER = logging.getLogger(__name__)

#: Largest change of any output, relative to the output's largest magnitude, that folding may
#: make (float rounding of the folded weights measures ~1e-6 on the default model).
FOLD_TOLERANCE = 1e-4


def conv_batch_norm_pairs(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, str]], Any]:
    """(convolution, batch norm) module names where the batch norm's input is the convolution's
    output, found by running ``model`` once on ``example`` (the data flow, not the module tree),
    and the model's output of that run."""
    produced_by: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: list[tuple[str, str]] = []

    def conv_hook(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            produced_by[id(output)] = (name, output)  # the tensor is kept, so its id stays unique
        return hook

    def norm_hook(name: str):
        def hook(_module: nn.Module, inputs: tuple) -> None:
            producer = produced_by.get(id(inputs[0]))
            if producer is not None and producer[1] is inputs[0]:
                pairs.append((producer[0], name))
        return hook

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook(name)))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(norm_hook(name)))
    try:
        with torch.no_grad():
            output = model(example)
    finally:
        for handle in handles:
            handle.remove()
    return pairs, output


def _outputs(output: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return output if isinstance(output, tuple) else (output,)


def _norm_remainder(norm: nn.BatchNorm2d) -> nn.Module:
    """What is left of a batch norm once its scale and shift are folded: timm's BatchNormAct2d
    also applies its dropout and activation, a plain batch norm nothing."""
    parts = [part for part in (getattr(norm, "drop", None), getattr(norm, "act", None))
             if isinstance(part, nn.Module)]
    return nn.Sequential(*parts) if parts else nn.Identity()


def fold_batch_norms(model: ModelT, example: torch.Tensor | None = None) -> ModelT:
    """An eval-mode copy of ``model`` with every convolution -> batch norm pair folded into one
    convolution; ``model`` itself when it has no batch norm or is training. ``example``: an input
    to find the pairs and check the copy on (default: the backends' check input,
    :func:`check_input`, for a FlowFeat model). If the copy's outputs differ from the model's (a
    convolution output that something besides its batch norm also reads), the model is
    returned, with a warning."""
    if model.training or not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return model
    if example is None:
        example = check_input(model.size_multiple, next(model.parameters()).device)
    pairs, want = conv_batch_norm_pairs(model, example)
    folded = copy.deepcopy(model)
    modules = dict(folded.named_modules())
    for conv_name, norm_name in pairs:
        parent_name, _, conv_attr = conv_name.rpartition(".")
        norm_parent_name, _, norm_attr = norm_name.rpartition(".")
        norm = modules[norm_name]
        setattr(modules[parent_name], conv_attr, fuse_conv_bn_eval(modules[conv_name], norm))
        setattr(modules[norm_parent_name], norm_attr, _norm_remainder(norm))
    with torch.no_grad():
        got = folded(example)
    change = max(relative_error(g.cpu().numpy(), w.cpu().numpy())
                 for w, g in zip(_outputs(want), _outputs(got), strict=True))
    if change > FOLD_TOLERANCE:
        LOGGER.warning("batch norms not folded: the folded copy's outputs moved by %.1e (relative), "
                       "more than %.0e; serving the model as it is", change, FOLD_TOLERANCE)
        return model
    return folded
