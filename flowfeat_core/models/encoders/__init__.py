"""Frozen encoders (one module per family); registered in ``flowfeat_core.models.registry``."""
