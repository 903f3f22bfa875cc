"""Exponential moving average of a module's parameters (the distillation teacher)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Holds a frozen copy of ``module`` updated as ``ema = decay * ema + (1 - decay) * module``."""

    def __init__(self, module: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the average towards ``module``'s current weights (buffers are copied)."""
        for average, current in zip(self.module.parameters(), module.parameters(), strict=True):
            average.lerp_(current.detach(), 1.0 - self.decay)
        for average, current in zip(self.module.buffers(), module.buffers(), strict=True):
            average.copy_(current)
