"""Exporting FlowFeat models to other runtimes (ONNX), with verification against PyTorch."""
