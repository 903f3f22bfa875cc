"""Load depth / segmentation probes with ``flowfeat_core.probes.io`` and check their task."""

from __future__ import annotations

from typing import Any

from flowfeat_core.probes.io import load_probe, probe_file


class ProbeLoadError(ValueError):
    """A probe cannot be used; the message is one line naming the file and the problem."""


def load_task_probe(path: str, task: str) -> Any:
    """Load the probe ``path`` names (a file, or ``"default"``: the shipped relative-depth
    probe) and check that it solves ``task`` ("depth"/"segmentation")."""
    try:
        probe = load_probe(probe_file(path))
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ProbeLoadError(f"{task} probe {path!r}: {error}") from error
    if getattr(probe, "task", None) != task:
        raise ProbeLoadError(f"{path!r} is a {getattr(probe, 'task', 'unknown')!r} probe, "
                             f"not a {task} probe")
    return probe
