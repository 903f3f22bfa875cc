"""Write benchmark sequences as rosbag2 bags (REP 118 depth) and as folders of PNG files.

Bag topics: ``image`` (rgb8), ``depth`` (32FC1 metres, 0 where nothing was rendered), ``labels``
and ``instances`` (mono8 class / instance ids), ``camera_info`` (the exact intrinsics), and on
request the camera's motion as a robot records it: nav_msgs/Odometry of ``base_link`` in
``odom`` plus /tf_static ``base_link`` -> the camera's optical frame, or the same motion on /tf.
Folder layout per sequence: ``images/``,
``depth/`` (16-bit PNG millimetres, 0 = invalid), ``labels/`` and ``instances/`` (8-bit PNG ids),
``flow/`` (float32 .npy HxWx2 forward flow, ``flow_valid`` as a uint8 PNG) and ``meta.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from flowfeat_core.data.camera_recording import (
    CAMERA_INFO_MSGTYPE,
    ODOMETRY_MSGTYPE,
    OPTICAL_IN_BODY,
    TF_MSGTYPE,
)
from flowfeat_core.data.ros_types import TYPESTORE
from flowfeat_core.geometry.transforms import RigidTransform, matrix_quaternion
from flowfeat_core.synthetic.benchmark import SyntheticSequence

IMAGE_MSGTYPE = "sensor_msgs/msg/Image"
START_STAMP_NS = 1_700_000_000_000_000_000
IMAGE_TOPICS = ("image", "depth", "labels", "instances")
#: How the camera's motion is written: not at all, as odometry (+ /tf_static mount), or on /tf.
POSE_FORMATS = ("none", "odometry", "tf")
CAMERA_FRAME = "camera_color_optical_frame"
#: The camera's optical frame in base_link: 20 cm ahead of and 50 cm above the odometry origin.
CAMERA_MOUNT = RigidTransform(OPTICAL_IN_BODY, np.array([0.2, 0.0, 0.5]))
#: The renderer's world frame (camera axes at frame 0) in the odom frame (REP 103).
WORLD_IN_ODOM = RigidTransform(OPTICAL_IN_BODY, np.zeros(3))


@dataclass(frozen=True)
class BagTopics:
    """Topic names of a benchmark bag."""

    image: str = "/camera/color/image_raw"
    depth: str = "/camera/depth/image_raw"
    labels: str = "/camera/labels"
    instances: str = "/camera/instances"
    camera_info: str = "/camera/color/camera_info"
    odometry: str = "/odom"


def _header(stamp_ns: int, frame_id: str) -> object:
    types = TYPESTORE.types
    return types["std_msgs/msg/Header"](
        types["builtin_interfaces/msg/Time"](stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000), frame_id
    )


def image_message(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = "camera") -> object:
    """A rosbags sensor_msgs/Image of rgb8 / mono8 / 32FC1 ``pixels`` (little endian, no padding)."""
    types = TYPESTORE.types
    header = _header(stamp_ns, frame_id)
    dtype = {"rgb8": np.uint8, "mono8": np.uint8, "32FC1": np.dtype("<f4")}[encoding]
    array = np.ascontiguousarray(pixels, dtype=dtype)
    height, width = array.shape[:2]
    data = array.reshape(height, -1).view(np.uint8)
    return types[IMAGE_MSGTYPE](header, height, width, encoding, 0, data.shape[1], data.reshape(-1))


def camera_info_message(intrinsics: np.ndarray, height: int, width: int, stamp_ns: int) -> object:
    """A sensor_msgs/CameraInfo of an undistorted pinhole camera."""
    matrix = np.asarray(intrinsics, float)
    projection = np.concatenate([matrix, np.zeros((3, 1))], axis=1)
    types = TYPESTORE.types
    return types[CAMERA_INFO_MSGTYPE](
        _header(stamp_ns, CAMERA_FRAME), height, width, "plumb_bob", np.zeros(5), matrix.reshape(-1),
        np.eye(3).reshape(-1), projection.reshape(-1), 0, 0,
        types["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False),
    )


def camera_in_odom(sequence: SyntheticSequence, frame: int) -> RigidTransform:
    """The camera's optical frame in ``odom`` at ``frame`` (from the renderer's exact path)."""
    camera = sequence.camera
    in_world = RigidTransform(camera.rotations[frame].T, camera.centres[frame])
    return WORLD_IN_ODOM @ in_world


def _transform_stamped(parent: str, child: str, transform: RigidTransform, stamp_ns: int) -> object:
    types = TYPESTORE.types
    return types["geometry_msgs/msg/TransformStamped"](
        _header(stamp_ns, parent), child, types["geometry_msgs/msg/Transform"](
            types["geometry_msgs/msg/Vector3"](*transform.translation),
            types["geometry_msgs/msg/Quaternion"](*matrix_quaternion(transform.rotation))))


def _odometry(transform: RigidTransform, stamp_ns: int) -> object:
    types = TYPESTORE.types
    pose = types["geometry_msgs/msg/Pose"](
        types["geometry_msgs/msg/Point"](*transform.translation),
        types["geometry_msgs/msg/Quaternion"](*matrix_quaternion(transform.rotation)))
    zero = types["geometry_msgs/msg/Vector3"](0.0, 0.0, 0.0)
    return types[ODOMETRY_MSGTYPE](
        _header(stamp_ns, "odom"), "base_link",
        types["geometry_msgs/msg/PoseWithCovariance"](pose, np.zeros(36)),
        types["geometry_msgs/msg/TwistWithCovariance"](types["geometry_msgs/msg/Twist"](zero, zero),
                                                        np.zeros(36)))


def _pose_messages(sequence: SyntheticSequence, frame: int, stamp_ns: int, poses: str,
                   topics: BagTopics, mount: RigidTransform) -> list[tuple[str, str, object]]:
    """(topic, msgtype, message) of the camera's motion at ``frame``: base_link in odom."""
    base = camera_in_odom(sequence, frame) @ mount.inverse()
    if poses == "odometry":
        return [(topics.odometry, ODOMETRY_MSGTYPE, _odometry(base, stamp_ns))]
    tf_message = TYPESTORE.types[TF_MSGTYPE]
    return [("/tf", TF_MSGTYPE, tf_message([_transform_stamped("odom", "base_link", base, stamp_ns)]))]


def write_sequence_bag(
    sequence: SyntheticSequence,
    path: str | Path,
    topics: BagTopics = BagTopics(),
    fps: float = 10.0,
    depth_delay_ns: int = 0,
    storage: str = "mcap",
    labels: bool = True,
    poses: str = "none",
    camera_mount: bool = True,
) -> Path:
    """Write ``sequence`` as a rosbag2 bag directory; depth is stamped ``depth_delay_ns`` later
    than colour (as on real RGB-D cameras), labels exactly with colour. Without ``labels`` only
    the colour topic and camera_info are written, as a robot's camera recording would be;
    ``poses`` (POSE_FORMATS) adds the camera's motion; an empty topic name is not written;
    without ``camera_mount`` no /tf_static is written and base_link is the camera itself
    (x forward), as on a bare camera rig."""
    if poses not in POSE_FORMATS:
        raise ValueError(f"poses must be one of {POSE_FORMATS}, got {poses!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag {path} already exists")
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    period_ns = round(1e9 / fps)
    written = {name: getattr(topics, name) for name in (IMAGE_TOPICS if labels else IMAGE_TOPICS[:1])}
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {
            name: writer.add_connection(topic, IMAGE_MSGTYPE, typestore=TYPESTORE)
            for name, topic in written.items()
        }
        info_connection = (writer.add_connection(topics.camera_info, CAMERA_INFO_MSGTYPE, typestore=TYPESTORE)
                           if topics.camera_info else None)
        pose_connections = {}
        if poses != "none":
            pose_topics = {"odometry": (topics.odometry, ODOMETRY_MSGTYPE), "tf": ("/tf", TF_MSGTYPE)}
            topic, msgtype = pose_topics[poses]
            pose_connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        mount = CAMERA_MOUNT if camera_mount else RigidTransform(OPTICAL_IN_BODY, np.zeros(3))
        if poses != "none" and camera_mount:
            static = writer.add_connection("/tf_static", TF_MSGTYPE, typestore=TYPESTORE)
            edge = _transform_stamped("base_link", CAMERA_FRAME, CAMERA_MOUNT, START_STAMP_NS)
            message = TYPESTORE.types[TF_MSGTYPE]([edge])
            writer.write(static, START_STAMP_NS, TYPESTORE.serialize_cdr(message, TF_MSGTYPE))
        height, width = sequence.frames[0].rgb.shape[:2]
        for index, frame in enumerate(sequence.frames):
            stamp = START_STAMP_NS + index * period_ns
            messages = {
                "image": (frame.rgb, "rgb8", stamp),
                "depth": (frame.depth, "32FC1", stamp + depth_delay_ns),
                "labels": (frame.classes, "mono8", stamp),
                "instances": (frame.instances, "mono8", stamp),
            }
            for name in connections:
                pixels, encoding, message_stamp = messages[name]
                raw = TYPESTORE.serialize_cdr(image_message(pixels, encoding, message_stamp, CAMERA_FRAME),
                                              IMAGE_MSGTYPE)
                writer.write(connections[name], message_stamp, raw)
            if info_connection is not None:
                info = camera_info_message(sequence.intrinsics, height, width, stamp)
                writer.write(info_connection, stamp, TYPESTORE.serialize_cdr(info, CAMERA_INFO_MSGTYPE))
            if poses != "none":
                for topic, msgtype, message in _pose_messages(sequence, index, stamp, poses, topics, mount):
                    writer.write(pose_connections[topic], stamp, TYPESTORE.serialize_cdr(message, msgtype))
    return path


def write_sequence_folder(sequence: SyntheticSequence, folder: str | Path) -> Path:
    """Write ``sequence`` as PNG/NPY files under ``folder`` (see the module doc)."""
    folder = Path(folder)
    for sub in ("images", "depth", "labels", "instances", "flow"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(sequence.frames):
        name = f"{index:06d}"
        depth_mm = np.clip(np.round(frame.depth * 1000.0), 0, 65535).astype(np.uint16)
        writes = {
            "images": cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR),
            "depth": depth_mm,
            "labels": frame.classes,
            "instances": frame.instances,
        }
        for sub, pixels in writes.items():
            if not cv2.imwrite(str(folder / sub / f"{name}.png"), pixels):
                raise OSError(f"cannot write {folder / sub / name}.png")
        np.save(folder / "flow" / f"{name}.npy", frame.flow)
        cv2.imwrite(str(folder / "flow" / f"{name}_valid.png"), frame.flow_valid.astype(np.uint8) * 255)
    meta = {
        "name": sequence.name,
        "intrinsics": sequence.intrinsics.tolist(),
        "class_names": list(sequence.class_names),
        "class_colors": [list(color) for color in sequence.class_colors],
        "depth_png": "uint16 millimetres, 0 = invalid",
        "labels_ignore": 255,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder
