"""Compressed images built to make a decoder allocate gigabytes (decompression bombs), shared by
the codec unit tests and the live-node abuse test."""

from __future__ import annotations

import struct

import cv2
import numpy as np


def rle_bmp_bomb(side: int = 30000) -> bytes:
    """An 8-bit RLE BMP of about 1 kB that declares ``side`` x ``side`` pixels (OpenCV decodes it
    at full size: 2.7 GB of BGR for 30000)."""
    palette = bytes(256 * 4)
    pixels = b"\x00\x01"  # RLE8 end of bitmap: every pixel is palette entry 0
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    header = struct.pack("<2sIHHI", b"BM", offset + len(pixels), 0, 0, offset)
    return header + info + palette + pixels


def late_header_jpeg(rgb: np.ndarray, width: int = 20000, height: int = 16000) -> bytes:
    """A real JPEG of ``rgb`` whose frame header, pushed past the first 64 KiB by an APP1 segment,
    declares ``width`` x ``height``."""
    jpeg = bytearray(cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes())
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    padding = b"\xff\xe1" + struct.pack(">H", 65535) + bytes(65533)
    return bytes(jpeg[:2] + padding + jpeg[2:])
