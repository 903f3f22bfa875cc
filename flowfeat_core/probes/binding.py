"""Which model a probe belongs to: its input channels must fit the model's features, and the
model it was trained on (the fingerprint in its ``model`` metadata) should be the one running.

A probe fed another model's features of the right width still produces numbers, plausible and
wrong; the fingerprint is how a consumer can tell. A probe saved before fingerprints were
recorded cannot be checked (:func:`trained_on` returns None).
"""

from __future__ import annotations

from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.heads import Probe

#: Key of the model fingerprint in a probe's ``model_info``.
MODEL_DIGEST = "digest"


def encoder_channels(model: FlowFeat) -> int:
    """Channels of the coarse encoder features a probe may read."""
    return int(model.encoder.channels[-1])


def channel_problem(probe: Probe, model: FlowFeat) -> str | None:
    """Why ``probe`` cannot read ``model``'s features (channel counts), or None."""
    spec = probe.spec
    if spec.dense_channels and spec.dense_channels != model.config.fdim:
        return (f"expects {spec.dense_channels} dense feature channels; the model gives "
                f"{model.config.fdim}")
    if spec.encoder_channels and spec.encoder_channels != encoder_channels(model):
        return (f"expects {spec.encoder_channels} encoder channels; the model gives "
                f"{encoder_channels(model)}")
    return None


def trained_on(probe: Probe, fingerprint: str) -> bool | None:
    """Whether ``probe`` was trained on the model with ``fingerprint`` (None: not recorded)."""
    recorded = probe.model_info.get(MODEL_DIGEST) if isinstance(probe.model_info, dict) else None
    return None if not recorded else recorded == fingerprint
