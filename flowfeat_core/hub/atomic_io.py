"""Atomic file writes: a file appears under its name only once it is complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_atomically(path: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)`` in ``path``'s folder, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes files private (0600)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write CPU-contiguous copies of ``tensors`` with header ``metadata``, atomically."""
    cpu = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
    return write_atomically(Path(path), lambda temporary: save_file(cpu, temporary, metadata=metadata))
