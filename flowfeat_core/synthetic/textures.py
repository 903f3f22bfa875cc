"""Real photographs used as textures of procedural scenes, in two disjoint pools.

* ``benchmark``: the evaluation benchmark's photos, grouped by semantic class; each class draws
  from its own photos, so a class is recognisable by appearance and shape, as in real scenes.
* ``training``: every other photo of OpenCV's sample data (Debian opencv-doc) and of
  scikit-image's data, for the distillation training corpus. No benchmark photo, by path or by
  content, is ever in it, so probe scores on the benchmark measure features on unseen textures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import skimage

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
#: Textures are stored with at most this many pixels on the longer side.
MAX_TEXTURE_SIDE = 512


@dataclass(frozen=True)
class SemanticClass:
    """A class of the benchmark: name, display colour, outline of its cut-outs, photo files."""

    name: str
    color: tuple[int, int, int]
    shape: str
    photos: tuple[Path, ...]


CLASSES: tuple[SemanticClass, ...] = (
    SemanticClass(
        "wall",
        (128, 64, 64),
        "full",
        (SKIMAGE_DATA / "brick.png", OPENCV_DATA / "building.jpg", OPENCV_DATA / "home.jpg"),
    ),
    SemanticClass(
        "floor",
        (64, 128, 64),
        "full",
        (SKIMAGE_DATA / "gravel.png", SKIMAGE_DATA / "grass.png", OPENCV_DATA / "board.jpg"),
    ),
    SemanticClass(
        "fruit",
        (230, 160, 20),
        "ellipse",
        (
            OPENCV_DATA / "fruits.jpg",
            OPENCV_DATA / "apple.jpg",
            OPENCV_DATA / "orange.jpg",
            OPENCV_DATA / "smarties.png",
        ),
    ),
    SemanticClass(
        "picture",
        (40, 90, 220),
        "rectangle",
        (
            OPENCV_DATA / "starry_night.jpg",
            OPENCV_DATA / "baboon.jpg",
            SKIMAGE_DATA / "astronaut.png",
            SKIMAGE_DATA / "chelsea.png",
            SKIMAGE_DATA / "coffee.png",
        ),
    ),
    SemanticClass(
        "paper",
        (220, 220, 220),
        "polygon",
        (
            OPENCV_DATA / "sudoku.png",
            OPENCV_DATA / "notes.png",
            SKIMAGE_DATA / "page.png",
            SKIMAGE_DATA / "text.png",
        ),
    ),
)
CLASS_NAMES: tuple[str, ...] = tuple(semantic.name for semantic in CLASSES)
CLASS_COLORS: tuple[tuple[int, int, int], ...] = tuple(semantic.color for semantic in CLASSES)
WALL, FLOOR = 0, 1
OBJECT_CLASSES: tuple[int, ...] = tuple(range(2, len(CLASSES)))
TEXTURE_POOLS = ("benchmark", "training")
BENCHMARK_PHOTOS: frozenset[Path] = frozenset(photo for semantic in CLASSES for photo in semantic.photos)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Training photos must have at least this shorter side and this grey-level spread: a blank
#: mask or a logo on white gives teacher flow nothing to track.
MIN_TRAINING_SIDE = 64
MIN_TRAINING_CONTRAST = 12.0


def _content_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@cache
def training_photos() -> tuple[Path, ...]:
    """Every usable photo in the two data folders that the benchmark does not use (sorted)."""
    benchmark_digests = {_content_digest(photo) for photo in BENCHMARK_PHOTOS if photo.is_file()}
    chosen = []
    for folder in (OPENCV_DATA, SKIMAGE_DATA):
        for path in sorted(folder.glob("*")):
            if path.suffix.lower() not in PHOTO_SUFFIXES or path in BENCHMARK_PHOTOS:
                continue
            grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if grey is None or min(grey.shape) < MIN_TRAINING_SIDE or grey.std() < MIN_TRAINING_CONTRAST:
                continue
            if _content_digest(path) not in benchmark_digests:
                chosen.append(path)
    if not chosen:
        raise FileNotFoundError(
            f"no training textures in {OPENCV_DATA} or {SKIMAGE_DATA}: install opencv-doc "
            "(apt-get install opencv-doc) and scikit-image"
        )
    return tuple(chosen)


def pool_photos(pool: str, class_id: int) -> tuple[Path, ...]:
    """The photos a texture of ``class_id`` may come from in ``pool`` (see the module doc)."""
    if pool == "benchmark":
        return CLASSES[class_id].photos
    if pool == "training":
        return training_photos()
    raise ValueError(f"texture pool must be one of {TEXTURE_POOLS}, got {pool!r}")


@cache
def load_photo(path: Path) -> np.ndarray:
    """An RGB uint8 photograph, shrunk to at most ``MAX_TEXTURE_SIDE`` pixels (cached)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"benchmark texture {path} is missing: install opencv-doc (apt-get install opencv-doc) "
            "and scikit-image"
        )
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode benchmark texture {path}")
    scale = min(1.0, MAX_TEXTURE_SIDE / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    rgb.setflags(write=False)
    return rgb


def random_texture(
    rng: np.random.Generator, class_id: int, height: int, width: int, pool: str = "benchmark"
) -> tuple[np.ndarray, Path]:
    """A ``height`` x ``width`` RGB crop of a random photo of the class from ``pool``, slightly
    blurred, and the photo it came from.

    The crop is taken at a random position and scale (flipped at random) and resized; the
    light blur keeps rendered frames free of aliasing, so that flow-based warping is exact.
    """
    photos = pool_photos(pool, class_id)
    source = photos[rng.integers(len(photos))]
    photo = load_photo(source)
    photo_h, photo_w = photo.shape[:2]
    fraction = rng.uniform(0.5, 1.0)
    crop_h = max(8, int(photo_h * fraction))
    crop_w = max(8, min(photo_w, int(crop_h * width / height)))
    top = int(rng.integers(0, photo_h - crop_h + 1))
    left = int(rng.integers(0, photo_w - crop_w + 1))
    crop = photo[top : top + crop_h, left : left + crop_w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    texture = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(texture, (0, 0), 0.8), source


def cutout_mask(rng: np.random.Generator, shape: str, height: int, width: int) -> np.ndarray:
    """Binary mask (uint8 0/1) of a cut-out outline inside a ``height`` x ``width`` texture."""
    mask = np.zeros((height, width), np.uint8)
    if shape == "full":
        mask[:] = 1
    elif shape == "rectangle":
        mask[1:-1, 1:-1] = 1
    elif shape == "ellipse":
        cv2.ellipse(mask, (width // 2, height // 2), (width // 2 - 1, height // 2 - 1), 0, 0, 360, 1, -1)
    elif shape == "polygon":
        corners = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        radii = rng.uniform(0.6, 1.0, corners)
        points = np.stack(
            [
                width / 2 + (width / 2 - 1) * radii * np.cos(angles),
                height / 2 + (height / 2 - 1) * radii * np.sin(angles),
            ],
            axis=1,
        )
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    else:
        raise ValueError(f"unknown cut-out shape {shape!r}")
    return mask
