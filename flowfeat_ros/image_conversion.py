"""Build sensor_msgs/Image and CameraInfo messages from numpy arrays, and back (no cv_bridge).

Every builder copies the pixel buffer exactly once: the array is made C-contiguous (a no-op when it
already is) and its memory is appended to the message's ``array.array('B')`` through a memoryview.
"""

from __future__ import annotations

import array
import copy
import re
import sys

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from flowfeat_core.data.image_codec import unpack_rows

_HOST_IS_BIGENDIAN = sys.byteorder == "big"
_FLOAT_CHANNELS = re.compile(r"^32FC(\d+)$")


def copy_header(header: Header) -> Header:
    """Independent copy of a Header (same stamp and frame_id, no shared sub-objects)."""
    stamp = Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec)
    return Header(stamp=stamp, frame_id=header.frame_id)


def _image_from_array(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """Wrap an HxW[xC] C-ordered array into an Image with the given encoding and copied header."""
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    # check_fields=True makes the generated setter keep our array.array instead of copying it
    # again (the default path re-copies every byte: ~20 ms for a 32FC128 320x240 map).
    msg = Image(check_fields=True)
    msg.header = copy_header(header)
    msg.height = int(height)
    msg.width = int(width)
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_IS_BIGENDIAN and pixels.dtype.itemsize > 1)
    msg.step = int(pixels.strides[0])
    msg.data = byte_array(pixels)
    return msg


def byte_array(values: np.ndarray) -> array.array:
    """The bytes of a C-contiguous array as the ``array.array('B')`` a ``uint8[]`` message field
    holds, copied once (assign it to a message built with ``check_fields=True``)."""
    buffer = array.array("B")
    buffer.frombytes(memoryview(values).cast("B"))
    return buffer


def _require(pixels: np.ndarray, dtype: type, ndim: int, channels: int | None, name: str) -> None:
    """Raise ValueError unless ``pixels`` has the dtype/rank/channel count an encoding needs."""
    ok = pixels.dtype == dtype and pixels.ndim == ndim
    if ok and channels is not None:
        ok = pixels.shape[2] == channels
    if not ok:
        want = f"{np.dtype(dtype).name} array of rank {ndim}"
        if channels is not None:
            want += f" with {channels} channels"
        raise ValueError(f"{name} needs a {want}, got {pixels.dtype.name} {pixels.shape}")


def rgb8_to_msg(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """HxWx3 uint8 array -> Image (``encoding`` 'rgb8' or 'bgr8'; channel order is not changed)."""
    if encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"colour encoding must be 'rgb8' or 'bgr8', got {encoding!r}")
    _require(rgb, np.uint8, 3, 3, encoding)
    return _image_from_array(rgb, encoding, header)


def mono8_to_msg(gray: np.ndarray, header: Header) -> Image:
    """HxW uint8 array -> mono8 Image."""
    _require(gray, np.uint8, 2, None, "mono8")
    return _image_from_array(gray, "mono8", header)


def uint16_to_msg(values: np.ndarray, header: Header) -> Image:
    """HxW uint16 array (e.g. depth in millimetres) -> 16UC1 Image in host byte order."""
    _require(values, np.uint16, 2, None, "16UC1")
    return _image_from_array(values, "16UC1", header)


def float32_to_msg(values: np.ndarray, header: Header) -> Image:
    """HxW float32 array (e.g. depth in metres) -> 32FC1 Image in host byte order."""
    _require(values, np.float32, 2, None, "32FC1")
    return _image_from_array(values, "32FC1", header)


def features_to_msg(features: np.ndarray, header: Header) -> Image:
    """HxWxC float32 feature map -> 32FC<C> Image (row-major, step = width*4*C, host byte order)."""
    if features.ndim != 3:
        raise ValueError(f"32FC<n> needs an HxWxC float32 array, got shape {features.shape}")
    _require(features, np.float32, 3, features.shape[2], f"32FC{features.shape[2]}")
    return _image_from_array(features, f"32FC{features.shape[2]}", header)


def _dtype_and_channels(encoding: str) -> tuple[np.dtype, int]:
    """Numpy dtype and channel count for the encodings image_msg_to_array understands."""
    match = _FLOAT_CHANNELS.match(encoding)
    if match:
        return np.dtype(np.float32), int(match.group(1))
    table = {"mono8": (np.uint8, 1), "16UC1": (np.uint16, 1), "mono16": (np.uint16, 1),
             "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3)}
    if encoding not in table:
        raise ValueError(f"unsupported image encoding {encoding!r} (want 32FC<n>, mono8, 16UC1, "
                         "mono16, rgb8 or bgr8)")
    dtype, channels = table[encoding]
    return np.dtype(dtype), channels


def image_msg_to_array(msg: Image) -> np.ndarray:
    """Image -> numpy view on its data: HxW for one channel, HxWxC otherwise (native byte order).

    Supports 32FC<n>, mono8, 16UC1/mono16, rgb8 and bgr8; rows may be padded (step > width*pixel).
    """
    dtype, channels = _dtype_and_channels(msg.encoding)
    return unpack_rows(msg.data, msg.height, msg.width, msg.step, channels, dtype,
                       bool(msg.is_bigendian), f"{msg.encoding} image {msg.width}x{msg.height}")


def camera_info_problem(info: CameraInfo, width: int, height: int) -> str | None:
    """Why ``info`` cannot describe a ``width`` x ``height`` image, or None when it can. An
    all-zero K (an uncalibrated camera, REP 104) is allowed; NaN/inf anywhere in K, D, R or P,
    or a calibrated K with a focal length <= 0, is not: it would be republished and turned into
    points silently wrong."""
    if (info.width, info.height) != (width, height):
        return f"camera_info is {info.width}x{info.height} but the image is {width}x{height}"
    for name in ("k", "d", "r", "p"):
        values = np.asarray(getattr(info, name), dtype=np.float64)
        if not np.isfinite(values).all():
            return f"camera_info {name.upper()} holds NaN or inf"
    k = np.asarray(info.k, dtype=np.float64)
    if k.any() and (k[0] <= 0 or k[4] <= 0):
        return f"camera_info focal lengths must be positive, got fx={k[0]:g} fy={k[4]:g}"
    return None


def scale_camera_info(info: CameraInfo, out_w: int, out_h: int) -> CameraInfo:
    """New CameraInfo for the same camera resized to ``out_w`` x ``out_h`` pixels.

    Scales fx, cx (and P's first row) by out_w/width and fy, cy (second rows) by out_h/height,
    including P's Tx/Ty terms; the ROI is scaled too. D, R, binning and the header are unchanged.
    """
    if info.width <= 0 or info.height <= 0:
        raise ValueError(f"CameraInfo has no image size ({info.width}x{info.height}); cannot scale")
    if out_w <= 0 or out_h <= 0:
        raise ValueError(f"output size must be positive, got {out_w}x{out_h}")
    sx, sy = out_w / info.width, out_h / info.height
    scaled = copy.deepcopy(info)
    k = np.array(info.k, dtype=np.float64).reshape(3, 3)
    k[0] *= sx
    k[1] *= sy
    scaled.k = k.ravel()
    p = np.array(info.p, dtype=np.float64).reshape(3, 4)
    p[0] *= sx
    p[1] *= sy
    scaled.p = p.ravel()
    scaled.width, scaled.height = int(out_w), int(out_h)
    roi = scaled.roi
    roi.x_offset = round(info.roi.x_offset * sx)
    roi.y_offset = round(info.roi.y_offset * sy)
    roi.width = round(info.roi.width * sx)
    roi.height = round(info.roi.height * sy)
    return scaled
