"""Errors of weight files: one place, so every caller catches the same types."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded into the requested model."""


class WeightsUnavailableError(RuntimeError):
    """Released weights are neither on disk nor downloadable."""
