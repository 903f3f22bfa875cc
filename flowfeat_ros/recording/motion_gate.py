"""Cheap frame filters run at camera rate: a per-topic rate cap and a thumbnail motion gate.

Thumbnails are made straight from the serialized (CDR) message: rosbags' deserializer returns the
pixel buffer as a numpy view (no copy), raw images are subsampled with strides, and JPEG/PNG
CompressedImages are decoded at 1/8 scale in grayscale (``cv2.IMREAD_REDUCED_GRAYSCALE_8``).
"""

from __future__ import annotations

import cv2
import numpy as np

from flowfeat_core.data.image_size import DECODER_MAX_PIXELS, compressed_image_size
from flowfeat_core.data.ros_types import TYPESTORE
from flowfeat_ros.recording.topics import COMPRESSED_IMAGE, IMAGE

THUMB_WIDTH = 80  # pixels across a thumbnail (about)
_CHANNELS_8BIT = {"mono8": 1, "8UC1": 1, "rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4,
                  "8UC4": 4}
_CHANNELS_16BIT = {"mono16": 1, "16UC1": 1}


class ThumbnailError(ValueError):
    """The message cannot be turned into a thumbnail (unknown encoding, truncated data...)."""


def _raw_thumbnail(msg) -> np.ndarray:
    """Strided grayscale-ish thumbnail (float32, about THUMB_WIDTH wide) of a raw Image."""
    encoding, height, width, step = msg.encoding, msg.height, msg.width, msg.step
    if encoding in _CHANNELS_8BIT:
        dtype, channels = np.dtype(np.uint8), _CHANNELS_8BIT[encoding]
    elif encoding in _CHANNELS_16BIT:
        dtype, channels = np.dtype(">u2" if msg.is_bigendian else "<u2"), 1
    else:
        raise ThumbnailError(f"motion gate: unsupported raw encoding {encoding!r}")
    data = msg.data
    if width == 0 or height == 0 or step < width * channels * dtype.itemsize \
            or data.size < step * height or step % dtype.itemsize:
        raise ThumbnailError(f"motion gate: inconsistent {encoding} image {width}x{height} "
                             f"step {step} with {data.size} bytes")
    stride = max(1, width // THUMB_WIDTH)
    rows = data[: step * height].view(dtype).reshape(height, step // dtype.itemsize)
    sampled = rows[::stride, : width * channels].reshape(-1, width, channels)[:, ::stride, 0]
    thumb = sampled.astype(np.float32)
    if dtype.itemsize == 2:
        thumb *= 255.0 / 65535.0
    return thumb


def _compressed_thumbnail(msg) -> np.ndarray:
    """1/8-scale grayscale decode of a JPEG/PNG CompressedImage (its header checked first: the
    frame is recorded as it came, but a decompression bomb is not decoded)."""
    try:
        width, height = compressed_image_size(msg.format, msg.data)
    except ValueError as error:
        raise ThumbnailError(f"motion gate: {error}") from None
    if width * height > DECODER_MAX_PIXELS:
        raise ThumbnailError(f"motion gate: CompressedImage declares {width}x{height}; not decoded")
    decoded = cv2.imdecode(msg.data, cv2.IMREAD_REDUCED_GRAYSCALE_8) if msg.data.size else None
    if decoded is None:
        raise ThumbnailError(f"motion gate: cannot decode CompressedImage format {msg.format!r}")
    return decoded.astype(np.float32)


def thumbnail_from_cdr(msgtype: str, data: bytes | memoryview) -> np.ndarray:
    """Small float32 grayscale thumbnail (0..255) of a serialized Image or CompressedImage."""
    msg = TYPESTORE.deserialize_cdr(data, msgtype)
    if msgtype == IMAGE:
        return _raw_thumbnail(msg)
    if msgtype == COMPRESSED_IMAGE:
        return _compressed_thumbnail(msg)
    raise ThumbnailError(f"motion gate: no thumbnail for {msgtype}")


class MotionGate:
    """Passes a frame when its thumbnail differs enough from the last frame that passed.

    The score is the mean absolute grey-level difference (0..255) between thumbnails; comparing
    with the last *kept* frame (not the previous one) means slow drifts are still recorded.
    A threshold of 0 disables the gate.
    """

    def __init__(self, threshold: float) -> None:
        """``threshold``: minimum mean absolute difference (grey levels) to keep a frame."""
        self.threshold = threshold
        self._reference: np.ndarray | None = None
        self.last_score = float("nan")

    def accept(self, thumbnail: np.ndarray) -> bool:
        """True if the frame moved enough (or is the first one / has a new size); remembers it."""
        if self._reference is None or self._reference.shape != thumbnail.shape:
            self.last_score = float("inf")
        else:
            self.last_score = float(np.mean(np.abs(thumbnail - self._reference)))
        if self.last_score >= self.threshold:
            self._reference = thumbnail
            return True
        return False


class RateCap:
    """Keeps at most ``max_rate_hz`` frames per second (0 = no cap), by message time in ns."""

    def __init__(self, max_rate_hz: float) -> None:
        """``max_rate_hz``: maximum kept frame rate; 0 disables the cap."""
        self.min_period_ns = int(1e9 / max_rate_hz) if max_rate_hz > 0 else 0
        self._last_kept_ns: int | None = None

    def due(self, now_ns: int) -> bool:
        """True if enough time passed since the last kept frame (does not record a keep)."""
        return self._last_kept_ns is None or now_ns - self._last_kept_ns >= self.min_period_ns

    def mark_kept(self, now_ns: int) -> None:
        """Remember that a frame was kept at ``now_ns``."""
        self._last_kept_ns = now_ns
