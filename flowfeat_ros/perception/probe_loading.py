"""Load depth / segmentation probes with ``flowfeat_core.probes.io`` and check their task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowfeat_core.probes.io import load_probe


class ProbeLoadError(ValueError):
    """A probe cannot be used; the message is one line naming the file and the problem."""


def load_task_probe(path: str, task: str) -> Any:
    """Load the probe at ``path`` and check that it solves ``task`` ("depth"/"segmentation")."""
    try:
        probe = load_probe(Path(path).expanduser())
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ProbeLoadError(f"{task} probe {path!r}: {error}") from error
    if getattr(probe, "task", None) != task:
        raise ProbeLoadError(f"{path!r} is a {getattr(probe, 'task', 'unknown')!r} probe, "
                             f"not a {task} probe")
    return probe
