"""Decode sensor_msgs/Image and sensor_msgs/CompressedImage messages into RGB uint8 arrays.

Works on any duck-typed message: rosbags dataclasses and rclpy message objects alike. Raw images
are validated (size, step, buffer length) and re-packed row by row, because
``rosbags.image.image_to_cvimage`` ignores ``step`` padding; colour conversion (Bayer
demosaicing, YUV 4:2:2, 16 to 8 bit scaling) is delegated to ``rosbags.image.convert_color``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from rosbags.image.image import ImageError, convert_color, to_cvtype

from flowfeat_core.data.image_size import DECODER_MAX_PIXELS, compressed_image_size

#: Raw encodings this module decodes, mapped to (bytes per channel, channels per pixel).
SUPPORTED_ENCODINGS: dict[str, tuple[int, int]] = {
    "rgb8": (1, 3),
    "bgr8": (1, 3),
    "rgba8": (1, 4),
    "bgra8": (1, 4),
    "rgb16": (2, 3),
    "bgr16": (2, 3),
    "rgba16": (2, 4),
    "bgra16": (2, 4),
    "mono8": (1, 1),
    "mono16": (2, 1),
    "bayer_rggb8": (1, 1),
    "bayer_bggr8": (1, 1),
    "bayer_gbrg8": (1, 1),
    "bayer_grbg8": (1, 1),
    "bayer_rggb16": (2, 1),
    "bayer_bggr16": (2, 1),
    "bayer_gbrg16": (2, 1),
    "bayer_grbg16": (2, 1),
    "yuv422": (1, 2),
    "uyvy": (1, 2),
    "yuyv": (1, 2),
    "yuv422_yuy2": (1, 2),
}

COMPRESSED_FORMATS = {"jpeg": ".jpg", "png": ".png"}


class ImageDecodeError(ValueError):
    """An image message cannot be decoded; the message is one line naming the problem."""


def decode_image_message(msg: Any) -> np.ndarray:
    """Return an HxWx3 uint8 RGB array (a fresh, writable copy) from an Image or CompressedImage."""
    if hasattr(msg, "format"):
        return decode_compressed_image(msg.format, msg.data)
    return decode_raw_image(
        msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian)
    )


def decode_raw_image(
    encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: bool = False
) -> np.ndarray:
    """Decode the fields of a sensor_msgs/Image into an HxWx3 uint8 RGB array."""
    label = f"image {width}x{height} {encoding}"
    if encoding not in SUPPORTED_ENCODINGS:
        supported = ", ".join(sorted(SUPPORTED_ENCODINGS))
        raise ImageDecodeError(f"{label}: unsupported encoding (supported: {supported})")
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"{label}: zero-size image")
    channel_bytes, channels = SUPPORTED_ENCODINGS[encoding]
    buffer = np.frombuffer(data, dtype=np.uint8)
    pixels = unpack_rows(buffer, height, width, step, channels, np.dtype(f"u{channel_bytes}"),
                         is_bigendian, label).astype(np.dtype(to_cvtype(encoding)[2]), copy=False)
    try:
        rgb = convert_color(pixels, encoding, "rgb8")
    except (ImageError, cv2.error) as error:
        raise ImageDecodeError(f"{label}: conversion to rgb8 failed: {error}") from None
    if np.may_share_memory(rgb, buffer):
        rgb = rgb.copy()
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def unpack_rows(data: Any, height: int, width: int, step: int, channels: int, dtype: np.dtype,
                is_bigendian: bool, label: str) -> np.ndarray:
    """The HxW (one channel) or HxWxC array, in native byte order, that a sensor_msgs/Image's
    ``data`` holds: rows ``step`` bytes apart (padding dropped), ``dtype`` elements in the
    message's byte order. The one reading of ``step`` and ``is_bigendian`` in this package."""
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"{label}: step {step} is smaller than width*bytes_per_pixel "
                               f"= {row_bytes}")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ImageDecodeError(f"{label}: data has {buffer.size} bytes, expected >= "
                               f"{step * height}")
    rows = np.ascontiguousarray(buffer[: step * height].reshape(height, step)[:, :row_bytes])
    ordered = dtype.newbyteorder(">" if is_bigendian else "<")
    pixels = rows.view(ordered).astype(ordered.newbyteorder("="), copy=False)
    return pixels.reshape((height, width, channels) if channels > 1 else (height, width))


def decode_compressed_image(fmt: str, data: Any,
                            max_pixels: int = DECODER_MAX_PIXELS) -> np.ndarray:
    """Decode the fields of a sensor_msgs/CompressedImage (jpeg or png) into HxWx3 uint8 RGB.
    The size is read from the header of the codec ``fmt`` names and checked against
    ``max_pixels`` before any pixel is decoded."""
    label = f"compressed image format={fmt!r}"
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError(f"{label}: data is empty")
    try:
        width, height = compressed_image_size(fmt, buffer)
    except ValueError as error:
        raise ImageDecodeError(str(error)) from None
    if width * height > max_pixels:
        raise ImageDecodeError(f"{label}: its header declares {width}x{height}, more than "
                               f"{max_pixels} pixels")
    try:
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None or bgr.size == 0:
        raise ImageDecodeError(f"{label}: {buffer.size} bytes are not a decodable jpeg/png image")
    if bgr.shape[:2] != (height, width):
        raise ImageDecodeError(f"{label}: decoded {bgr.shape[1]}x{bgr.shape[0]} but the header "
                               f"declares {width}x{height}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an HxWx3 uint8 RGB array as jpeg or png bytes (CompressedImage.data)."""
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"unsupported compressed format {fmt!r}; use one of "
                         f"{sorted(COMPRESSED_FORMATS)}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected a non-empty HxWx3 uint8 RGB array, got shape {rgb.shape} "
                         f"dtype {rgb.dtype}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else []
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(COMPRESSED_FORMATS[fmt], bgr, params)
    if not ok:
        raise ValueError(f"OpenCV failed to encode a {rgb.shape} image as {fmt}")
    return encoded.tobytes()
