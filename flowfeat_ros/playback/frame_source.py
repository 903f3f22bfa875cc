"""Frames to play as a camera: a video file, an image folder or a rosbag2 image topic, plus the
CameraInfo that goes with them (a synthetic pinhole or a calibration file)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo

from flowfeat_core.data.bag_reader import iter_image_messages, select_image_topics
from flowfeat_core.data.image_codec import decode_image_message
from flowfeat_core.data.image_folder import list_image_files

# Sources yield one loader per frame, so a frame that fails to decode is skipped (the loader
# raises ValueError) without ending the iteration.
FrameLoader = Callable[[], np.ndarray]


def _video_frames(path: Path) -> Iterator[FrameLoader]:
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield lambda rgb=rgb: rgb
    finally:
        capture.release()


def _read_image(file: Path) -> np.ndarray:
    bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {file}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _folder_frames(files: list[Path]) -> Iterator[FrameLoader]:
    for file in files:
        yield lambda file=file: _read_image(file)


def _bag_frames(path: Path, topic: str) -> Iterator[FrameLoader]:
    for _, msg in iter_image_messages(path, topic):  # the training reader: CRC-checked chunks
        yield lambda msg=msg: decode_image_message(msg)


class FrameSource:
    """A replayable sequence of RGB frames with its native frame rate (None if it has none)."""

    def __init__(self, source: str, bag_topic: str = "") -> None:
        """Open ``source``: a video file, a folder of images, or a rosbag2 directory (read by
        flowfeat_core.data, so playback and training see the same frames in the same order).
        Raises ValueError (DataError) when it cannot be played."""
        path = Path(source).expanduser()
        self.path = path
        self.fps: float | None = None
        if not path.exists():
            raise ValueError(f"source {source!r} does not exist")
        if (path / "metadata.yaml").is_file():
            self.bag_topic = self._pick_bag_topic(path, bag_topic)
        elif path.is_dir():
            self.files = list_image_files(path)  # natural order, as training reads folders
        else:
            capture = cv2.VideoCapture(str(path))
            if not capture.isOpened():
                raise ValueError(f"OpenCV cannot open video {path}")
            fps = capture.get(cv2.CAP_PROP_FPS)
            capture.release()
            self.fps = fps if fps and math.isfinite(fps) and fps > 0 else None

    def _pick_bag_topic(self, path: Path, wanted: str) -> str:
        """``wanted``, or the image topic with most frames (as training picks it)."""
        (topic,) = select_image_topics(path, [wanted] if wanted else None)
        with Reader(path) as reader:  # the mean rate, from the same reader as the count
            count = sum(c.msgcount for c in reader.connections if c.topic == topic)
            if count > 1 and reader.duration > 0:
                self.fps = (count - 1) / (reader.duration * 1e-9)
        return topic

    def frames(self) -> Iterator[FrameLoader]:
        """A fresh iterator over loaders of all frames, from the start."""
        if hasattr(self, "bag_topic"):
            return _bag_frames(self.path, self.bag_topic)
        if hasattr(self, "files"):
            return _folder_frames(self.files)
        return _video_frames(self.path)


def pinhole_camera_info(width: int, height: int, fov_deg: float) -> CameraInfo:
    """Distortion-free CameraInfo with horizontal field of view ``fov_deg`` and square pixels."""
    fx = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = np.array([fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0])
    info.r = np.eye(3).ravel()
    info.p = np.array([fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    return info


def load_calibration(path: Path) -> CameraInfo:
    """CameraInfo from a camera_calibration / camera_info_manager YAML file."""
    try:
        data = yaml.safe_load(path.read_text())
        info = CameraInfo(width=int(data["image_width"]), height=int(data["image_height"]),
                          distortion_model=str(data.get("distortion_model", "plumb_bob")))
        info.k = np.array(data["camera_matrix"]["data"], dtype=np.float64)
        info.d = [float(v) for v in data["distortion_coefficients"]["data"]]
        info.r = np.array(data.get("rectification_matrix", {"data": np.eye(3).ravel()})["data"],
                          dtype=np.float64)
        info.p = np.array(data["projection_matrix"]["data"], dtype=np.float64)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AssertionError) as error:
        raise ValueError(f"calibration file {path}: {type(error).__name__}: {error}") from None
    return info
