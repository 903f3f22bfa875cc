"""Self-supervised motion-profile distillation: data with teacher flow, EMA, training loop, state."""
