"""Reading our safetensors files (checkpoints and probes): the JSON-in-header, alone or with the
tensors from the same open file."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open


def read_tagged_metadata(
    path: Path, format_key: str, format_version: str, what: str, error: type[Exception]
) -> dict[str, str]:
    """The header metadata of ``path``; ``error`` (with a one-line reason) when the file is
    missing, not safetensors, or not tagged ``format_key: format_version`` (not one of ours)."""
    return read_tagged_file(path, format_key, format_version, what, error, tensors=False)[0]


def read_tagged_file(
    path: Path, format_key: str, format_version: str, what: str, error: type[Exception],
    tensors: bool = True,
) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Header metadata and (with ``tensors``) every tensor of ``path``, read through one open
    handle: a file replaced by an atomic rename meanwhile gives the old content or the new one,
    never metadata of one and tensors of the other. Errors as :func:`read_tagged_metadata`."""
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get(format_key) != format_version:
                raise error(f"{path} is not a flowfeat {what} (no '{format_key}' metadata)")
            names = handle.keys()  # a safe_open handle is not iterable
            contents = {key: handle.get_tensor(key) for key in names} if tensors else {}
    except (SafetensorError, OSError, ValueError) as reason:
        if isinstance(reason, error):
            raise
        raise error(f"{path} is not a readable safetensors file: {reason}") from None
    return metadata, contents
