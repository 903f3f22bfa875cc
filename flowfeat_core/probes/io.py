"""Probe checkpoints: one safetensors file, JSON metadata (spec, FlowFeat model, metrics). No pickle.

The same tensors and metadata can travel attached to a model checkpoint (hub/checkpoint.py), as
``<task>_probe``: the on-robot loop deploys a model with the depth probe trained on it in one
file, and the probe source ``"default"`` means "the probe that comes with the model": the one
attached to the checkpoint, else the one shipped with the default model.
"""

from __future__ import annotations

import json
from pathlib import Path

from flowfeat_core.hub.checkpoint import Attachment, read_checkpoint, save_with_attachments
from flowfeat_core.hub.embedded import SHIPPED_DEPTH_PROBE
from flowfeat_core.hub.safetensors_header import read_tagged_file
from flowfeat_core.probes.heads import Probe, ProbeSpec
from flowfeat_core.process.atomic_io import save_safetensors

FORMAT_KEY = "flowfeat_probe_format"
FORMAT_VERSION = "1"
#: Probe source naming the probe that comes with the model: attached to its checkpoint, else
#: the one shipped with the default model (relative depth).
SHIPPED_PROBE = "default"


def probe_file(source: str) -> Path:
    """The file a probe source names: ``"default"`` is the shipped relative-depth probe (when
    the checkpoint has no probe attached, see :func:`attached_probe`)."""
    return SHIPPED_DEPTH_PROBE if source == SHIPPED_PROBE else Path(source).expanduser()


def attachment_name(task: str) -> str:
    """The name a ``task`` probe is attached to a checkpoint under."""
    return f"{task}_probe"


class ProbeError(ValueError):
    """A probe file cannot be used; the message is one line naming the file and the problem."""


def _metadata(probe: Probe) -> dict[str, str]:
    return {
        FORMAT_KEY: FORMAT_VERSION,
        "spec": json.dumps(probe.spec.to_dict()),
        "model": json.dumps(probe.model_info),
        "metrics": json.dumps(probe.metrics),
    }


def save_probe(path: str | Path, probe: Probe) -> Path:
    """Write ``probe`` (tensors, spec, ``model_info`` and ``metrics``) atomically to ``path``."""
    return save_safetensors(Path(path), probe.state_dict(), _metadata(probe))


def load_probe(path: str | Path) -> Probe:
    """Rebuild a probe saved by :func:`save_probe` (in eval mode, on the CPU)."""
    path = Path(path)
    metadata, tensors = read_tagged_file(path, FORMAT_KEY, FORMAT_VERSION, "probe", ProbeError)
    return _rebuild(metadata, tensors, str(path))


def _rebuild(metadata: dict[str, str], tensors: dict, origin: str) -> Probe:
    """The probe ``metadata`` describes with ``tensors``; ProbeError naming ``origin``."""
    if metadata.get(FORMAT_KEY) != FORMAT_VERSION:
        raise ProbeError(f"{origin} is not a flowfeat probe (no '{FORMAT_KEY}' metadata)")
    try:
        probe = Probe(ProbeSpec.from_dict(json.loads(metadata["spec"])))
        probe.model_info = json.loads(metadata.get("model", "{}"))
        probe.metrics = json.loads(metadata.get("metrics", "{}"))
    except (KeyError, TypeError, ValueError) as error:
        raise ProbeError(f"{origin} has invalid probe metadata: {error}") from None
    expected = probe.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise ProbeError(f"{origin}: tensors do not match the probe its metadata describes")
    probe.load_state_dict(tensors)
    return probe.eval()


def attached_probe(attachments: dict[str, Attachment], task: str, origin: str) -> Probe | None:
    """The ``task`` probe among a checkpoint's attachments, or None; ProbeError when it is
    damaged (``origin`` names the checkpoint in the message)."""
    attachment = attachments.get(attachment_name(task))
    if attachment is None:
        return None
    return _rebuild(attachment.metadata, attachment.tensors,
                    f"the {task} probe attached to {origin}")


def attach_probes(checkpoint: Path, probes: dict[str, Probe], out: Path) -> Path:
    """Write ``checkpoint``'s model with ``probes`` (task -> probe) attached to ``out``."""
    attachments = {attachment_name(task): Attachment(
        {k: v.detach().cpu() for k, v in probe.state_dict().items()}, _metadata(probe))
        for task, probe in probes.items()}
    return save_with_attachments(out, read_checkpoint(checkpoint), attachments)
