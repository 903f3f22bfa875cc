"""Read a folder of image files as one frame sequence, in natural file-name order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from flowfeat_core.data.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Image folders carry no time; frames are stamped at this nominal rate (never split by gaps).
NOMINAL_PERIOD_NS = 100_000_000


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted so that frame2 comes before frame10."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} is not a directory")
    files = [path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"image folder {folder} contains no {'/'.join(IMAGE_SUFFIXES)} files")
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> list[int | str]:
    """Sort key that compares digit runs as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def iter_folder_frames(files: list[Path]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (nominal stamp_ns, HxWx3 uint8 RGB) for each file; unreadable files are errors."""
    for number, path in enumerate(files):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"cannot read image {path}")
        yield number * NOMINAL_PERIOD_NS, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
