"""A fixed set of real photographs and video frames for judging features by eye and by their
statistics (effective rank), independent of the procedural benchmark.

The photos are benchmark textures (never in the training corpus, see
:mod:`flowfeat_core.synthetic.textures`); the frames come from OpenCV's sample videos.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from flowfeat_core.synthetic.textures import BENCHMARK_PHOTOS, OPENCV_DATA, SKIMAGE_DATA

REAL_PHOTOS: tuple[Path, ...] = (
    OPENCV_DATA / "fruits.jpg",
    OPENCV_DATA / "baboon.jpg",
    OPENCV_DATA / "building.jpg",
    OPENCV_DATA / "home.jpg",
    SKIMAGE_DATA / "astronaut.png",
    SKIMAGE_DATA / "coffee.png",
)
#: (video, frame index): a street scene, a hand-held view of a tree, an animated clip.
VIDEO_FRAMES: tuple[tuple[Path, int], ...] = (
    (OPENCV_DATA / "vtest.avi", 100),
    (OPENCV_DATA / "tree.avi", 30),
    (OPENCV_DATA / "Megamind.avi", 50),
)
if not set(REAL_PHOTOS) <= BENCHMARK_PHOTOS:
    raise ImportError("real-image photos must be benchmark photos, which the training pool excludes")


def read_video_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as RGB uint8."""
    capture = cv2.VideoCapture(str(path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise FileNotFoundError(f"cannot read frame {index} of {path}: install opencv-doc")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def read_photo(path: Path) -> np.ndarray:
    """A photo as RGB uint8 at its own size."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {path}: install opencv-doc and scikit-image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def real_images() -> dict[str, np.ndarray]:
    """Name -> RGB image for every photo and video frame of the set."""
    images = {path.name: read_photo(path) for path in REAL_PHOTOS}
    images.update({f"{path.stem}#{index}": read_video_frame(path, index) for path, index in VIDEO_FRAMES})
    return images
