"""Labelled images for probe training: colour paired with depth or label maps, from rosbag2
bags (paired by header stamp) or from folders (paired by file name stem).

Depth follows REP 118: 16UC1 in millimetres or 32FC1 in metres; 0 and NaN are invalid (returned
as 0). Label maps are mono8/8UC1 class ids (255 = ignore) or 8-bit PNGs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flowfeat_core.data.bag_reader import find_bags, iter_image_messages, select_image_topics
from flowfeat_core.data.errors import DataError
from flowfeat_core.data.image_codec import ImageDecodeError, decode_image_message
from flowfeat_core.data.image_folder import list_image_files
from flowfeat_core.data.ros_types import header_stamp_ns

LabeledPair = tuple[np.ndarray, np.ndarray]
_DEPTH_ENCODINGS = {"16UC1": ("u2", 0.001), "mono16": ("u2", 0.001), "32FC1": ("f4", 1.0)}
_LABEL_ENCODINGS = ("mono8", "8UC1")


def _raw_pixels(msg: Any, dtype: str) -> np.ndarray:
    """The single-channel pixels of a sensor_msgs/Image as an H x W array of ``dtype``."""
    item = np.dtype(dtype).itemsize
    if msg.height <= 0 or msg.width <= 0 or msg.step < msg.width * item:
        raise ImageDecodeError(f"{msg.encoding} image {msg.width}x{msg.height} has step {msg.step}")
    buffer = np.frombuffer(msg.data, np.uint8)
    if buffer.size < msg.step * msg.height:
        raise ImageDecodeError(
            f"{msg.encoding} image has {buffer.size} bytes, expected {msg.step * msg.height}"
        )
    rows = np.ascontiguousarray(
        buffer[: msg.step * msg.height].reshape(msg.height, msg.step)[:, : msg.width * item]
    )
    order = ">" if msg.is_bigendian else "<"
    return rows.view(np.dtype(order + dtype)).reshape(msg.height, msg.width)


def decode_depth_message(msg: Any) -> np.ndarray:
    """Depth in metres (float32, 0 = invalid) from a 16UC1 (mm) or 32FC1 (m) Image."""
    if msg.encoding not in _DEPTH_ENCODINGS:
        raise ImageDecodeError(f"depth encoding {msg.encoding!r} is not 16UC1 or 32FC1 (REP 118)")
    dtype, scale = _DEPTH_ENCODINGS[msg.encoding]
    depth = _raw_pixels(msg, dtype).astype(np.float32) * scale
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def decode_label_message(msg: Any) -> np.ndarray:
    """Class ids (uint8, 255 = ignore) from a mono8 / 8UC1 Image."""
    if msg.encoding not in _LABEL_ENCODINGS:
        raise ImageDecodeError(f"label encoding {msg.encoding!r} is not mono8 or 8UC1")
    return _raw_pixels(msg, "u1").copy()


def _check_sizes(image: np.ndarray, target: np.ndarray, where: str) -> None:
    if image.shape[:2] != target.shape[:2]:
        raise DataError(
            f"{where}: target is {target.shape[1]}x{target.shape[0]} but the image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )


def read_bag_pairs(
    bags: list[str | Path],
    image_topic: str,
    target_topic: str,
    decode_target: Callable[[Any], np.ndarray],
    max_stamp_diff_ns: int,
) -> list[LabeledPair]:
    """(rgb, target) pairs from every bag: each target is paired with the colour image of nearest
    header stamp, if within ``max_stamp_diff_ns``; targets without one are skipped."""
    pairs: list[LabeledPair] = []
    for bag in find_bags(bags):
        select_image_topics(bag, [image_topic, target_topic])
        images = [(header_stamp_ns(msg), msg) for _, msg in iter_image_messages(bag, image_topic)]
        stamps = np.array([stamp for stamp, _ in images], np.int64)
        for _, target_msg in iter_image_messages(bag, target_topic):
            stamp = header_stamp_ns(target_msg)
            nearest = int(np.argmin(np.abs(stamps - stamp))) if stamps.size else -1
            if nearest < 0 or abs(int(stamps[nearest]) - stamp) > max_stamp_diff_ns:
                continue
            try:
                rgb, target = decode_image_message(images[nearest][1]), decode_target(target_msg)
            except ImageDecodeError as error:
                raise DataError(f"bag {bag}: {error}") from None
            _check_sizes(rgb, target, f"bag {bag} {target_topic} at stamp {stamp}")
            pairs.append((rgb, target))
    if not pairs:
        raise DataError(
            f"no {image_topic} image within {max_stamp_diff_ns / 1e6:g} ms of any "
            f"{target_topic} message in {', '.join(map(str, bags))}"
        )
    return pairs


def read_depth_file(path: Path) -> np.ndarray:
    """Depth in metres from a 16-bit PNG (millimetres) or a float .npy (metres); 0 = invalid."""
    if path.suffix == ".npy":
        depth = np.load(path, allow_pickle=False).astype(np.float32)
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
            raise DataError(f"depth file {path} is not a single-channel 16-bit PNG in millimetres")
        depth = raw.astype(np.float32) / 1000.0
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def read_label_file(path: Path) -> np.ndarray:
    """Class ids from an 8-bit single-channel PNG (255 = ignore)."""
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.dtype != np.uint8 or labels.ndim != 2:
        raise DataError(f"label file {path} is not a single-channel 8-bit PNG of class ids")
    return labels


def iter_folder_pairs(
    image_folder: str | Path, target_folder: str | Path, read_target: Callable[[Path], np.ndarray]
) -> Iterator[LabeledPair]:
    """(rgb, target) pairs matched by file stem; every image needs a target file."""
    target_folder = Path(target_folder)
    if not target_folder.is_dir():
        raise DataError(f"target folder {target_folder} is not a directory")
    targets = {path.stem: path for path in target_folder.iterdir() if path.suffix in (".png", ".npy")}
    for image_path in list_image_files(Path(image_folder)):
        if image_path.stem not in targets:
            raise DataError(f"no target for {image_path.name} in {target_folder}")
        bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"cannot decode image {image_path}")
        target = read_target(targets[image_path.stem])
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        _check_sizes(rgb, target, f"{targets[image_path.stem]}")
        yield rgb, target
