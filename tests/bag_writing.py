"""Test helper: write real rosbag2 bags (mcap or sqlite3) of image topics with the rosbags Writer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from flowfeat_core.data.image_codec import encode_compressed

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
Image = TYPESTORE.types["sensor_msgs/msg/Image"]
CompressedImage = TYPESTORE.types["sensor_msgs/msg/CompressedImage"]
Header = TYPESTORE.types["std_msgs/msg/Header"]
Time = TYPESTORE.types["builtin_interfaces/msg/Time"]

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")

# Offsets (row, column) of the red and blue samples inside each 2x2 Bayer tile.
BAYER_RED_BLUE = {"rggb": ((0, 0), (1, 1)), "bggr": ((1, 1), (0, 0)),
                  "gbrg": ((1, 0), (0, 1)), "grbg": ((0, 1), (1, 0))}


def read_video_frames(name: str, count: int, max_side: int, start: int = 0) -> list[np.ndarray]:
    """Read `count` RGB frames from an opencv-doc video, downscaled to at most `max_side` px."""
    capture = cv2.VideoCapture(str(OPENCV_DATA / name))
    frames = []
    for index in range(start + count):
        ok, bgr = capture.read()
        assert ok, f"{name} has fewer than {start + count} frames"
        if index >= start:
            scale = max_side / max(bgr.shape[:2])
            small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def encode_raw(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an HxWx3 RGB uint8 image to the pixel layout of a sensor_msgs/Image encoding."""
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        code = {"rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA,
                "bgra8": cv2.COLOR_RGB2BGRA}[encoding]
        return rgb.copy() if code is None else cv2.cvtColor(rgb, code)
    if encoding in ("mono8", "mono16"):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return gray if encoding == "mono8" else gray.astype(np.uint16) * 257
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY)
    if encoding in ("yuyv", "yuv422_yuy2"):
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2)
    if encoding.startswith("bayer_"):
        pattern, bits = encoding[6:10], encoding[10:]
        (red_row, red_col), (blue_row, blue_col) = BAYER_RED_BLUE[pattern]
        mosaic = rgb[:, :, 1].copy()
        mosaic[red_row::2, red_col::2] = rgb[red_row::2, red_col::2, 0]
        mosaic[blue_row::2, blue_col::2] = rgb[blue_row::2, blue_col::2, 2]
        return mosaic if bits == "8" else mosaic.astype(np.uint16) * 257
    raise ValueError(f"encode_raw does not know encoding {encoding!r}")


def make_image_message(rgb: np.ndarray, encoding: str, stamp_ns: int,
                       big_endian: bool = False, row_padding: int = 0) -> object:
    """Build a rosbags sensor_msgs/Image of `rgb` in `encoding`, optionally with padded rows."""
    pixels = encode_raw(rgb, encoding)
    if big_endian:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">"))
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    rows = np.pad(rows, ((0, 0), (0, row_padding)))
    return Image(make_header(stamp_ns), rgb.shape[0], rgb.shape[1], encoding, int(big_endian),
                 rows.shape[1], rows.reshape(-1))


def make_header(stamp_ns: int, frame_id: str = "camera") -> object:
    """Build a std_msgs/Header with the given stamp."""
    return Header(Time(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000), frame_id)


def write_image_bag(
    path: Path,
    frames: Sequence[np.ndarray],
    storage: str = "mcap",
    topic: str = "/camera/image_raw",
    compressed: bool = False,
    encoding: str = "rgb8",
    fps: float = 10.0,
    start_stamp_ns: int = 1_700_000_000_000_000_000,
    stamps_ns: Sequence[int] | None = None,
    log_times_ns: Sequence[int] | None = None,
    extra_topics: Mapping[str, Sequence[np.ndarray]] | None = None,
) -> Path:
    """Write `frames` (RGB uint8) as a rosbag2 bag directory and return its path.

    Header stamps default to `start_stamp_ns + i / fps`; log times default to the stamps.
    `extra_topics` adds further rgb8 Image topics, stamped at the same rate.
    """
    period_ns = round(1e9 / fps)
    if stamps_ns is None:
        stamps_ns = [start_stamp_ns + i * period_ns for i in range(len(frames))]
    if log_times_ns is None:
        log_times_ns = stamps_ns
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connection = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        for rgb, stamp, log_time in zip(frames, stamps_ns, log_times_ns, strict=True):
            if compressed:
                message = CompressedImage(make_header(stamp), encoding,
                                          np.frombuffer(encode_compressed(rgb, encoding), np.uint8))
            else:
                message = make_image_message(rgb, encoding, stamp)
            writer.write(connection, log_time, TYPESTORE.serialize_cdr(message, msgtype))
        for extra_topic, extra_frames in (extra_topics or {}).items():
            extra = writer.add_connection(extra_topic, "sensor_msgs/msg/Image", typestore=TYPESTORE)
            for index, rgb in enumerate(extra_frames):
                stamp = start_stamp_ns + index * period_ns
                writer.write(extra, stamp, TYPESTORE.serialize_cdr(
                    make_image_message(rgb, "rgb8", stamp), "sensor_msgs/msg/Image"))
    return path
