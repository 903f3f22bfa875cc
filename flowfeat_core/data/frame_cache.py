"""On-disk cache of the decoded, resized frames of one source stream, read through a lazy memmap.

Why decode once into a cache instead of re-reading messages on demand: skipping near-static
stretches needs every frame decoded anyway, rosbags offers no per-message random access (an mcap
chunk would be decompressed again for every frame) and OpenCV video seeking is inexact. Frames are
stored at training resolution (`max_side`), so a frame costs h*w*3 bytes on disk (230 kB at
320x240), RAM stays bounded (the OS page cache holds what is hot) and DataLoader workers share the
pages. Only a 32 px grayscale thumbnail and the stamp per frame are kept in memory (~1 kB).
The cache is keyed by the source's path, size and modification time, so re-runs reuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CACHE_VERSION = 1
THUMBNAIL_SIDE = 32


def default_cache_dir() -> Path:
    """$FLOWFEAT_FRAME_CACHE, else $XDG_CACHE_HOME/flowfeat_ros/frames (~/.cache by default)."""
    if explicit := os.environ.get("FLOWFEAT_FRAME_CACHE"):
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "flowfeat_ros" / "frames"


def resize_to_max_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (INTER_AREA) so the long side is at most `max_side`; smaller images pass as is."""
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def gray_thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Grayscale uint8 thumbnail with a long side of THUMBNAIL_SIDE px (for motion checks)."""
    return resize_to_max_side(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), THUMBNAIL_SIDE)


class FrameStore:
    """Read-only random access to the frames of one cache file; picklable, opens lazily."""

    def __init__(self, path: Path, count: int, frame_shape: tuple[int, int, int]) -> None:
        self.path = path
        self.count = count
        self.frame_shape = frame_shape
        self._frames: np.memmap | None = None

    def __len__(self) -> int:
        return self.count

    def read(self, row: int) -> np.ndarray:
        """Frame `row` as a fresh HxWx3 uint8 RGB array."""
        if not 0 <= row < self.count:
            raise IndexError(f"frame {row} out of range for {self.count} cached frames")
        if self._frames is None:
            self._frames = np.memmap(self.path, dtype=np.uint8, mode="r",
                                     shape=(self.count, *self.frame_shape))
        return np.array(self._frames[row])

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the open memmap; each DataLoader worker maps the file itself."""
        return {**self.__dict__, "_frames": None}


@dataclass(frozen=True)
class CachedStream:
    """All frames of one source stream, in source order, with stamps and thumbnails in memory."""

    store: FrameStore
    stamps_ns: np.ndarray
    thumbnails: np.ndarray
    skipped_other_size: int


def cache_stream(key: dict[str, Any], frames: Iterable[tuple[int, np.ndarray]],
                 cache_dir: Path, max_side: int) -> CachedStream:
    """Cache (stamp_ns, rgb) frames resized to `max_side`, or load the cache made for `key`.

    Frames whose resized shape differs from the first frame's are dropped and counted.
    """
    description = json.dumps({**key, "max_side": max_side, "version": CACHE_VERSION},
                              sort_keys=True)
    digest = hashlib.sha1(description.encode()).hexdigest()[:24]
    frames_path = cache_dir / f"{digest}.frames"
    meta_path = cache_dir / f"{digest}.npz"
    if not meta_path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        _write_cache(frames, frames_path, meta_path, max_side)
    with np.load(meta_path, allow_pickle=False) as meta:
        stamps, thumbnails = meta["stamps_ns"], meta["thumbnails"]
        shape = tuple(int(side) for side in meta["frame_shape"])
        skipped = int(meta["skipped_other_size"])
    store = FrameStore(frames_path, len(stamps), (shape[0], shape[1], shape[2]))
    return CachedStream(store, stamps, thumbnails, skipped)


def _write_cache(frames: Iterable[tuple[int, np.ndarray]], frames_path: Path, meta_path: Path,
                 max_side: int) -> None:
    """Write the frame file and then its metadata; temporary names until both are complete."""
    suffix = f".tmp{os.getpid()}"
    frames_tmp = frames_path.with_name(frames_path.name + suffix)
    meta_tmp = meta_path.with_name(meta_path.name + suffix + ".npz")
    stamps: list[int] = []
    thumbnails: list[np.ndarray] = []
    shape: tuple[int, ...] = (0, 0, 3)
    skipped = 0
    try:
        with frames_tmp.open("wb") as out:
            for stamp_ns, rgb in frames:
                small = np.ascontiguousarray(resize_to_max_side(rgb, max_side))
                if not stamps:
                    shape = small.shape
                elif small.shape != shape:
                    skipped += 1
                    continue
                out.write(small.tobytes())
                stamps.append(stamp_ns)
                thumbnails.append(gray_thumbnail(small))
        thumbnail_shape = thumbnails[0].shape if thumbnails else (0, 0)
        np.savez(meta_tmp, stamps_ns=np.asarray(stamps, dtype=np.int64),
                 thumbnails=np.asarray(thumbnails, dtype=np.uint8).reshape(-1, *thumbnail_shape),
                 frame_shape=np.asarray(shape), skipped_other_size=np.asarray(skipped))
        frames_tmp.replace(frames_path)
        meta_tmp.replace(meta_path)
    finally:
        frames_tmp.unlink(missing_ok=True)
        meta_tmp.unlink(missing_ok=True)
