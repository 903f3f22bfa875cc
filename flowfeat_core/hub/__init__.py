"""Weights on disk: our safetensors checkpoints, the authors' .pth layout, released names and the
embedded default, all behind :func:`flowfeat_core.hub.loading.load_model`."""
