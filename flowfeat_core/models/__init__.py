"""FlowFeat networks: the model, its configuration, and the encoder/decoder registry."""
