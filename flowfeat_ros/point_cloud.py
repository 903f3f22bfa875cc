"""Organised sensor_msgs/PointCloud2 from a metric depth image and the camera's intrinsics, with
per-point colour and class fields (the layout of depth_image_proc's point_cloud_xyzrgb).

Depth is REP 118 z-depth (metres along the optical axis); a pixel (u, v) with depth z becomes
x = (u - cx) z / fx, y = (v - cy) z / fy in the camera's optical frame (REP 103: x right, y down,
z forward). Pixels without a valid depth are NaN points and the cloud is not dense. Lens
distortion is not removed: K is applied as is, exact for rectified images.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from flowfeat_ros.image_conversion import byte_array, copy_header


def unproject(depth: np.ndarray, k: Sequence[float]) -> np.ndarray:
    """HxW z-depth (metres) and a row-major 3x3 K -> HxWx3 float32 points; NaN where depth is not
    finite and positive."""
    fx, cx, fy, cy = float(k[0]), float(k[2]), float(k[4]), float(k[5])
    if fx <= 0 or fy <= 0:
        raise ValueError(f"camera_info K has no focal length (fx={fx}, fy={fy})")
    height, width = depth.shape
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)
    u = np.arange(width, dtype=np.float32)[None, :]
    v = np.arange(height, dtype=np.float32)[:, None]
    return np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)


def _packed_rgb(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> HxW float32 holding 0x00RRGGBB bits (the PCL/rviz2 ``rgb`` convention)."""
    channels = rgb.astype(np.uint32)
    packed = (channels[..., 0] << 16) | (channels[..., 1] << 8) | channels[..., 2]
    return packed.view(np.float32)


def point_cloud_msg(points: np.ndarray, header: Header, rgb: np.ndarray | None = None,
                    labels: np.ndarray | None = None) -> PointCloud2:
    """HxWx3 float32 points (+ optional HxWx3 uint8 colours and HxW class ids) -> an organised
    PointCloud2 with fields x, y, z [, rgb] [, label (uint32)]."""
    height, width = points.shape[:2]
    columns: list[tuple[str, np.ndarray, int]] = [
        (axis, points[..., i], PointField.FLOAT32) for i, axis in enumerate("xyz")]
    if rgb is not None:
        columns.append(("rgb", _packed_rgb(rgb), PointField.FLOAT32))
    if labels is not None:
        columns.append(("label", labels.astype(np.uint32), PointField.UINT32))
    dtype = np.dtype([(name, values.dtype) for name, values, _ in columns])
    record = np.empty((height, width), dtype=dtype)
    for name, values, _ in columns:
        record[name] = values
    msg = PointCloud2(check_fields=True)  # keeps the byte array instead of copying it again
    msg.header = copy_header(header)
    msg.height, msg.width = int(height), int(width)
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step, msg.row_step = dtype.itemsize, dtype.itemsize * int(width)
    msg.is_dense = bool(np.isfinite(points).all())
    msg.fields = [PointField(name=name, offset=dtype.fields[name][1], datatype=datatype, count=1)
                  for name, _, datatype in columns]
    msg.data = byte_array(record)
    return msg
