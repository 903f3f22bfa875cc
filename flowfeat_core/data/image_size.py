"""An image message's size before decoding it, and limits on it, so that a hostile or broken camera
cannot make the reader allocate gigabytes: raw Image fields, or the PNG IHDR / JPEG SOF header of
a CompressedImage (no pixel is decoded).

A CompressedImage is read only as the codec its ``format`` names: bytes of another codec (a
1 kB RLE BMP can declare 30000x30000 pixels) are refused, never handed to a decoder that would
guess. The JPEG header is scanned to its frame header however far EXIF or other segments push it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic), which hold the size.
JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                              0xCE, 0xCF})
#: JPEG markers without a length field.
JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in JPEG_STANDALONE_MARKERS:
            index += 2
            continue
        if marker in JPEG_SOF_MARKERS:
            if index + 9 > len(data):
                return None
            height = int.from_bytes(data[index + 5:index + 7], "big")
            width = int.from_bytes(data[index + 7:index + 9], "big")
            return width, height
        index += 2 + int.from_bytes(data[index + 2:index + 4], "big")
    return None


#: What OpenCV's decoders may allocate, in pixels (OPENCV_IO_MAX_IMAGE_PIXELS, which OpenCV
#: reads once, when it loads: node processes set it before importing cv2). 256 MP = 768 MB of
#: BGR, the largest frame ``max_input_pixels`` can admit.
DECODER_MAX_PIXELS = 2**28
DECODER_LIMIT_VARIABLE = "OPENCV_IO_MAX_IMAGE_PIXELS"


def compressed_codec(fmt: str) -> str:
    """``"jpeg"`` or ``"png"`` from a CompressedImage ``format`` (``jpeg``, ``png``, or
    image_transport's ``"bgr8; jpeg compressed bgr8"``); ValueError for anything else."""
    lowered = fmt.lower()
    if "compresseddepth" in lowered:
        raise ValueError(f"format {fmt!r}: compressedDepth images are not supported")
    if "png" in lowered:
        return "png"
    if "jpeg" in lowered or "jpg" in lowered:
        return "jpeg"
    raise ValueError(f"format {fmt!r} names neither jpeg nor png")


def compressed_image_size(fmt: str, data: Any) -> tuple[int, int]:
    """(width, height) from the header of the codec ``fmt`` names; ValueError when the bytes are
    not that codec or their header holds no size."""
    codec = compressed_codec(fmt)
    view = memoryview(data).cast("B")
    if codec == "png":
        size = _png_size(bytes(view[:24])) if bytes(view[:8]) == PNG_SIGNATURE else None
    else:
        size = _jpeg_size(view) if bytes(view[:2]) == b"\xff\xd8" else None
    if size is None:
        raise ValueError(f"format {fmt!r}: {len(view)} bytes are not a {codec} image with a "
                         "readable size in its header")
    return size


def requested_size(width: int, height: int, source_hw: tuple[int, int]) -> tuple[int, int]:
    """(height, width) asked for by a ``width`` x ``height`` setting for a source of
    ``source_hw``: both 0 keep the source size; one 0 keeps the source's aspect ratio."""
    src_h, src_w = source_hw
    if width and not height:
        height = max(1, round(src_h * width / src_w))
    elif height and not width:
        width = max(1, round(src_w * height / src_h))
    return height or src_h, width or src_w


def message_image_size(msg: Any) -> tuple[int, int]:
    """(width, height) of an Image or CompressedImage message, read without decoding it."""
    if hasattr(msg, "format"):
        return compressed_image_size(msg.format, msg.data)
    return int(msg.width), int(msg.height)


@dataclass(frozen=True)
class FrameLimits:
    """Largest frame accepted: total pixels, and the ratio of the long to the short side (an
    extreme aspect makes the network input huge once the short side is scaled up)."""

    max_pixels: int
    max_aspect_ratio: float

    def problem(self, width: int, height: int) -> str | None:
        """Why a ``width`` x ``height`` frame is refused, or None."""
        if width <= 0 or height <= 0:
            return None  # the decoder reports empty images with its own message
        if width * height > self.max_pixels:
            return (f"{width}x{height} has {width * height} pixels, more than max_input_pixels "
                    f"{self.max_pixels}")
        aspect = max(width, height) / min(width, height)
        if aspect > self.max_aspect_ratio:
            return (f"{width}x{height} has aspect ratio {aspect:.1f}, more than max_aspect_ratio "
                    f"{self.max_aspect_ratio:g}")
        return None
