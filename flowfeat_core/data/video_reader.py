"""Read frames from video files (OpenCV VideoCapture) given as paths or glob patterns."""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from flowfeat_core.data.errors import DataError

FALLBACK_FPS = 30.0


def find_videos(patterns: Sequence[str | Path]) -> list[Path]:
    """Expand video paths and glob patterns; every pattern must match at least one file."""
    videos: list[Path] = []
    for pattern in patterns:
        text = str(Path(pattern).expanduser())
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        files = [Path(match) for match in matches if Path(match).is_file()]
        if not files:
            raise DataError(f"no video file matches {text}")
        videos.extend(files)
    return list(dict.fromkeys(videos))


def iter_video_frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (stamp_ns, HxWx3 uint8 RGB) for every frame; stamps are frame_number / fps."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError(f"OpenCV cannot open video {path}")
        fps = capture.get(cv2.CAP_PROP_FPS)
        period_ns = 1e9 / (fps if fps > 0 else FALLBACK_FPS)
        number = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield round(number * period_ns), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            number += 1
    finally:
        capture.release()
