"""Real photographs used as textures of the procedural benchmark, grouped by semantic class.

Each class draws its textures from its own pool of photographs (OpenCV's sample data from the
Debian opencv-doc package and images bundled with scikit-image), so a class is recognisable by
appearance and shape, as in real scenes.
"""

from __future__ import annotations

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


def random_texture(rng: np.random.Generator, class_id: int, height: int, width: int) -> np.ndarray:
    """A ``height`` x ``width`` RGB crop of a random photo of the class, slightly blurred.

    The crop is taken at a random position and scale (flipped at random) and resized; the
    light blur keeps rendered frames free of aliasing, so that flow-based warping is exact.
    """
    photos = CLASSES[class_id].photos
    photo = load_photo(photos[rng.integers(len(photos))])
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
    return cv2.GaussianBlur(texture, (0, 0), 0.8)


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
