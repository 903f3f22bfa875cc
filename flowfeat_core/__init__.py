"""FlowFeat core: model, encoders, checkpoints, distillation, data, training (no ROS)."""

from flowfeat_core.model import FlowFeat, ModelConfig
from flowfeat_core.vit import ViTSpec

__all__ = ["FlowFeat", "ModelConfig", "ViTSpec"]
