"""On-disk cache of teacher optical flow, one float16 .npy file per frame pair.

Writes are atomic (``process.atomic_io.write_atomically``), so concurrent data-loader
workers never see half-written files; a file that is corrupt or truncated anyway (e.g. after a crash
of the file system) reads as a miss and is replaced by the next ``put``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from flowfeat_core.process.atomic_io import write_atomically

_LOG = logging.getLogger(__name__)


def flow_cache_key(source_id: str, index_a: int, index_b: int, method: str, size: tuple[int, int]) -> str:
    """Hash identifying the flow from frame ``index_a`` to ``index_b`` of a source.

    ``method`` names the teacher (e.g. "dis_medium") and ``size`` is the (height, width) the flow
    was computed at; any change in these gives a different key.
    """
    height, width = (int(side) for side in size)
    fields = [str(source_id), int(index_a), int(index_b), str(method), height, width]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:32]


def _check_flow(flow: np.ndarray) -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        shape = getattr(flow, "shape", type(flow).__name__)
        raise ValueError(f"flow must be an H x W x 2 array, got {shape}")


class FlowCache:
    """Flow arrays (H x W x 2) stored under ``root`` as float16, returned as float32."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """File holding ``key`` (sharded by the first two hex digits)."""
        if len(key) < 3 or not key.isalnum():
            raise ValueError(f"cache key must be alphanumeric (from flow_cache_key), got {key!r}")
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached flow as float32, or None if absent or unreadable."""
        path = self.path(key)
        try:
            flow = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as error:
            _LOG.warning("ignoring unreadable flow cache file %s: %s", path, error)
            return None
        if flow.dtype != np.float16 or flow.ndim != 3 or flow.shape[2] != 2:
            _LOG.warning("ignoring flow cache file %s with %s %s", path, flow.shape, flow.dtype)
            return None
        return flow.astype(np.float32)

    def put(self, key: str, flow: np.ndarray) -> None:
        """Store ``flow`` as float16, atomically replacing any previous file for ``key``."""
        _check_flow(flow)
        float16_max = float(np.finfo(np.float16).max)
        if not np.isfinite(flow).all() or np.abs(flow).max(initial=0.0) > float16_max:
            raise ValueError(f"flow must be finite with |values| <= {float16_max} (float16)")
        half = flow.astype(np.float16)

        def write(temporary: str) -> None:
            with open(temporary, "wb") as stream:  # a file object: np.save(path) would add ".npy"
                np.save(stream, half, allow_pickle=False)

        write_atomically(self.path(key), write)
