"""Probe checkpoints: one safetensors file, JSON metadata (spec, FlowFeat model, metrics). No pickle."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from flowfeat_core.hub.embedded import SHIPPED_DEPTH_PROBE
from flowfeat_core.hub.safetensors_header import read_tagged_metadata
from flowfeat_core.probes.heads import Probe, ProbeSpec
from flowfeat_core.process.atomic_io import save_safetensors

FORMAT_KEY = "flowfeat_probe_format"
FORMAT_VERSION = "1"
#: Probe source naming the probe shipped with the default model (relative depth).
SHIPPED_PROBE = "default"


def probe_file(source: str) -> Path:
    """The file a probe source names: ``"default"`` is the shipped relative-depth probe."""
    return SHIPPED_DEPTH_PROBE if source == SHIPPED_PROBE else Path(source).expanduser()


class ProbeError(ValueError):
    """A probe file cannot be used; the message is one line naming the file and the problem."""


def save_probe(path: str | Path, probe: Probe) -> Path:
    """Write ``probe`` (tensors, spec, ``model_info`` and ``metrics``) atomically to ``path``."""
    metadata = {
        FORMAT_KEY: FORMAT_VERSION,
        "spec": json.dumps(probe.spec.to_dict()),
        "model": json.dumps(probe.model_info),
        "metrics": json.dumps(probe.metrics),
    }
    return save_safetensors(Path(path), probe.state_dict(), metadata)


def load_probe(path: str | Path) -> Probe:
    """Rebuild a probe saved by :func:`save_probe` (in eval mode, on the CPU)."""
    path = Path(path)
    metadata = read_tagged_metadata(path, FORMAT_KEY, FORMAT_VERSION, "probe", ProbeError)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ProbeError(f"{path} is not a readable safetensors file: {error}") from None
    try:
        probe = Probe(ProbeSpec.from_dict(json.loads(metadata["spec"])))
        probe.model_info = json.loads(metadata.get("model", "{}"))
        probe.metrics = json.loads(metadata.get("metrics", "{}"))
    except (KeyError, TypeError, ValueError) as error:
        raise ProbeError(f"{path} has invalid probe metadata: {error}") from None
    expected = probe.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise ProbeError(f"{path}: tensors do not match the probe its metadata describes")
    probe.load_state_dict(tensors)
    return probe.eval()
