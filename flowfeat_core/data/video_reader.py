"""Read frames from video files (OpenCV VideoCapture) given as paths or glob patterns, optionally
limited to a frame range (``clip.mp4@START:STOP``, frames START..STOP-1, either end optional)."""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flowfeat_core.data.errors import DataError

FALLBACK_FPS = 30.0
_RANGE = re.compile(r"^(?P<path>.+)@(?P<start>\d*):(?P<stop>\d*)$")


@dataclass(frozen=True)
class VideoSpan:
    """Frames ``start`` .. ``stop - 1`` of a video file (``stop`` None: to the end). Held-out
    parts of a clip stay out of training by giving only the training range."""

    path: Path
    start: int = 0
    stop: int | None = None

    @property
    def source_id(self) -> str:
        """The resolved file, with the range when there is one."""
        text = str(self.path.resolve())
        return text if (self.start, self.stop) == (0, None) else f"{text}@{self.start}:{self.stop or ''}"


def find_videos(patterns: Sequence[str | Path]) -> list[VideoSpan]:
    """Expand video paths and glob patterns (each optionally ``@START:STOP``); every pattern must
    match at least one file."""
    videos: list[VideoSpan] = []
    for pattern in patterns:
        text, start, stop = str(pattern), 0, None
        ranged = _RANGE.match(text)
        if ranged:
            text = ranged["path"]
            start = int(ranged["start"] or 0)
            stop = int(ranged["stop"]) if ranged["stop"] else None
            if stop is not None and stop <= start:
                raise DataError(f"empty frame range in {pattern}: STOP must be above START")
        text = str(Path(text).expanduser())
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        files = [Path(match) for match in matches if Path(match).is_file()]
        if not files:
            raise DataError(f"no video file matches {text}")
        videos.extend(VideoSpan(file, start, stop) for file in files)
    return list(dict.fromkeys(videos))


def iter_video_frames(span: VideoSpan) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (stamp_ns, HxWx3 uint8 RGB) for every frame of the span; stamps are
    frame_number / fps, so a range keeps the clip's own time line."""
    capture = cv2.VideoCapture(str(span.path))
    try:
        if not capture.isOpened():
            raise DataError(f"OpenCV cannot open video {span.path}")
        fps = capture.get(cv2.CAP_PROP_FPS)
        period_ns = 1e9 / (fps if fps > 0 else FALLBACK_FPS)
        number = 0
        while span.stop is None or number < span.stop:
            ok, bgr = capture.read()
            if not ok:
                return
            if number >= span.start:
                yield round(number * period_ns), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            number += 1
    finally:
        capture.release()
