"""Atomic, durable file writes: a file appears under its name only once it is complete and on
disk (the data and the rename are fsync'ed), so a power cut or SIGKILL leaves the old file or
the new one, never a torn one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file


def write_atomically(path: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)`` in ``path``'s folder, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes files private (0600)
        _fsync(temporary)
        os.replace(temporary, path)
        _fsync(path.parent)  # the rename itself
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def write_json_atomically(path: Path, data: object) -> Path:
    """``data`` as JSON (indented) in ``path``, atomically."""
    text = json.dumps(data, indent=1)
    return write_atomically(path, lambda temporary: Path(temporary).write_text(text))


def copy_atomically(source: Path, path: Path) -> Path:
    """A copy of ``source`` in ``path``, atomically (never half a file under ``path``)."""
    return write_atomically(path, lambda temporary: shutil.copyfile(source, temporary))


def _fsync(path: str | Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write CPU-contiguous copies of ``tensors`` with header ``metadata``, atomically."""
    cpu = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
    return write_atomically(Path(path), lambda temporary: save_file(cpu, temporary, metadata=metadata))
