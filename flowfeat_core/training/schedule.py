"""Learning-rate schedules, as pure functions of the step (so resuming needs no extra state)."""

from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "cosine")


def learning_rate(base_lr: float, step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    ``constant`` (the reference) keeps ``base_lr``; ``cosine`` decays it to 0 at ``total_steps``.
    Both ramp up linearly over the first ``warmup_steps`` steps.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose from {LR_SCHEDULES}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
