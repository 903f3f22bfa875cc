"""FlowFeat core: model, weights, inference, data, training, probes (PyTorch, numpy, OpenCV; no ROS).

The public face: ``from flowfeat_core import FlowFeat, ModelConfig, ViTSpec, load_model,
Predictor, FeaturePCA``. Names resolve on first use, so importing a light submodule (say
``flowfeat_core.data.image_codec``) does not import torch and timm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_PUBLIC = {
    "FlowFeat": "flowfeat_core.models.flowfeat",
    "ModelConfig": "flowfeat_core.models.config",
    "ViTSpec": "flowfeat_core.models.encoders.vit",
    "load_model": "flowfeat_core.hub.loading",
    "Predictor": "flowfeat_core.inference.predictor",
    "FeaturePCA": "flowfeat_core.inference.pca",
}
__all__ = ["FeaturePCA", "FlowFeat", "ModelConfig", "Predictor", "ViTSpec", "load_model"]

if TYPE_CHECKING:
    from flowfeat_core.hub.loading import load_model
    from flowfeat_core.inference.pca import FeaturePCA
    from flowfeat_core.inference.predictor import Predictor
    from flowfeat_core.models.config import ModelConfig
    from flowfeat_core.models.encoders.vit import ViTSpec
    from flowfeat_core.models.flowfeat import FlowFeat


def __getattr__(name: str) -> object:
    """Import a public name from its module on first access (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'flowfeat_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
