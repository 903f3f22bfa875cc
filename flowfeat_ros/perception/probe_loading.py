"""Load depth / segmentation probes through ``flowfeat_core.probes`` and check their task."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

PROBE_TASKS = ("depth", "segmentation")


class ProbeLoadError(ValueError):
    """A probe cannot be used; the message is one line naming the file and the problem."""


def probes_available() -> str | None:
    """None when ``flowfeat_core.probes`` provides ``load_probe``, else the reason it does not."""
    try:
        module = importlib.import_module("flowfeat_core.probes")
    except ImportError as error:
        return f"probe support is not installed (cannot import flowfeat_core.probes: {error})"
    if not hasattr(module, "load_probe"):
        return "probe support is incomplete (flowfeat_core.probes has no load_probe)"
    return None


def load_task_probe(path: str, task: str) -> Any:
    """Load the probe at ``path`` and check that it solves ``task`` ("depth"/"segmentation")."""
    missing = probes_available()
    if missing:
        raise ProbeLoadError(f"{task} probe {path!r}: {missing}")
    from flowfeat_core.probes import load_probe

    try:
        probe = load_probe(Path(path).expanduser())
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ProbeLoadError(f"{task} probe {path!r}: {error}") from error
    if getattr(probe, "task", None) != task:
        raise ProbeLoadError(f"{path!r} is a {getattr(probe, 'task', 'unknown')!r} probe, "
                             f"not a {task} probe")
    return probe
