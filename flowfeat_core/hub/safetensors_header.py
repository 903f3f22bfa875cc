"""Reading the JSON-in-header of our safetensors files (checkpoints and probes) without tensors."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import safe_open


def read_tagged_metadata(
    path: Path, format_key: str, format_version: str, what: str, error: type[Exception]
) -> dict[str, str]:
    """The header metadata of ``path``; ``error`` (with a one-line reason) when the file is
    missing, not safetensors, or not tagged ``format_key: format_version`` (not one of ours)."""
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as reason:
        raise error(f"{path} is not a readable safetensors file: {reason}") from None
    if metadata.get(format_key) != format_version:
        raise error(f"{path} is not a flowfeat {what} (no '{format_key}' metadata)")
    return metadata
