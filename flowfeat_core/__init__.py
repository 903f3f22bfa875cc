"""FlowFeat core: model, encoders, checkpoints, distillation, data, training (no ROS)."""
