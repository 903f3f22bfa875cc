"""A model's fingerprint: what a probe, an export or a cache entry was made from.

Two models with the same configuration and weights give the same features and the same
fingerprint; any change to either gives another, so a probe trained on one model can tell that
it is being fed another model's features.
"""

from __future__ import annotations

import hashlib

from torch import nn


def model_fingerprint(model: nn.Module) -> str:
    """16 hex digits of SHA-256 over the model's configuration and every weight."""
    config = getattr(model, "config", None)
    digest = hashlib.sha256(repr(config.to_dict() if config is not None else None).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
