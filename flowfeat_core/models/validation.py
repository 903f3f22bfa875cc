"""Checks for architecture fields read from checkpoint metadata (untrusted JSON): a bad value must
fail with its name and the allowed range, not deep inside torch (or by allocating gigabytes)."""

from __future__ import annotations

import math
from typing import Any


def require_int(owner: str, name: str, value: Any, low: int, high: int) -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{owner}.{name} must be an integer in [{low}, {high}], got {value!r}")


def require_floats(owner: str, name: str, values: Any, count: int, positive: bool = False) -> tuple:
    """``values`` as a tuple of ``count`` finite floats (positive ones if asked); else ValueError."""
    items = list(values) if isinstance(values, (list, tuple)) else []
    numbers = [float(v) for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
    ok = len(numbers) == len(items) == count
    if not ok or not all(math.isfinite(v) and (v > 0 or not positive) for v in numbers):
        kind = "positive finite numbers" if positive else "finite numbers"
        raise ValueError(f"{owner}.{name} must be {count} {kind}, got {values!r}")
    return tuple(numbers)


def require_positive_float(owner: str, name: str, value: Any) -> float:
    """``value`` as a positive finite float (not a bool); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{owner}.{name} must be a positive finite number, got {value!r}")
    return float(value)
