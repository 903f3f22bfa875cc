"""A moving camera's recording read back from a rosbag2 bag: its frames, the intrinsics from the
recorded sensor_msgs/CameraInfo, and, where the bag holds them, the camera's poses at the
frames' stamps from nav_msgs/Odometry or from /tf.

Poses, in order of preference:
- ``--odometry-topic`` (or the bag's only Odometry topic): the odometry child frame's pose,
  interpolated at each frame's stamp, times the child -> camera transform from /tf_static when
  the bag links the two; without that link the camera is taken to sit at the child frame's
  origin looking along its x axis (REP 103's forward), which a log line says.
- /tf whose timed edges connect the image's ``frame_id`` to a fixed frame.
- none: the labels can only be relative.
The image's ``frame_id`` is its optical frame (x right, y down, z forward), as sensor_msgs/Image
specifies.

A plain video file has no camera_info: :func:`read_video_recording` assumes a horizontal field
of view (relative depth only; a wrong one bends depth, it does not reorder it much).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flowfeat_core.data.bag_reader import (
    iter_image_messages,
    iter_messages,
    select_image_topics,
    topic_counts,
)
from flowfeat_core.data.errors import DataError
from flowfeat_core.data.image_codec import ImageDecodeError, decode_image_message
from flowfeat_core.data.ros_types import header_stamp_ns
from flowfeat_core.data.video_reader import VideoSpan, iter_video_frames
from flowfeat_core.geometry.transforms import RigidTransform, TimedTransforms, TransformTree
from flowfeat_core.geometry.two_view import CameraPose

LOG = logging.getLogger(__name__)

CAMERA_INFO_MSGTYPE = "sensor_msgs/msg/CameraInfo"
ODOMETRY_MSGTYPE = "nav_msgs/msg/Odometry"
TF_MSGTYPE = "tf2_msgs/msg/TFMessage"
TF_TOPICS = {"/tf": False, "/tf_static": True}
#: Camera optical axes (x right, y down, z forward) in a REP 103 body frame (x forward, y left,
#: z up): the columns are the optical x, y, z axes.
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
#: How far a frame's stamp may lie outside the recorded poses (tf2 extrapolates not at all).
POSE_TOLERANCE_NS = 50_000_000
POSE_SOURCES = ("auto", "none")


@dataclass(frozen=True)
class CameraRecording:
    """Frames (RGB uint8) of one image topic of one bag (or one video file), with intrinsics for
    their size and, when ``poses`` is set, one camera pose per frame (metres, in
    ``pose_source``'s fixed frame)."""

    source: Path
    topic: str
    frames: list[np.ndarray]
    stamps_ns: np.ndarray
    intrinsics: np.ndarray
    poses: list[CameraPose] | None
    pose_source: str


def read_camera_recording(bag: Path, image_topic: str | None = None,
                          camera_info_topic: str | None = None,
                          odometry_topic: str | None = None, poses: str = "auto",
                          max_side: int = 320) -> CameraRecording:
    """Frames of ``image_topic`` (the bag's largest image topic by default) resized so their
    longer side is at most ``max_side``, with scaled intrinsics and poses (see the module doc);
    ``poses="none"`` ignores odometry and /tf. DataError with one line for what is missing."""
    topic = select_image_topics(bag, [image_topic] if image_topic else None)[0]
    frames, stamps, camera_frame = [], [], ""
    for _, message in iter_image_messages(bag, topic):
        try:
            frame = decode_image_message(message)
        except ImageDecodeError as error:
            raise DataError(f"bag {bag} {topic}: {error}") from None
        frames.append(_shrunk(frame, max_side, frames[0].shape[:2] if frames else None))
        stamps.append(header_stamp_ns(message))
        camera_frame = camera_frame or message.header.frame_id.lstrip("/")
    if len(frames) < 2:
        raise DataError(f"bag {bag} {topic}: fewer than 2 frames")
    stamps = np.array(stamps, np.int64)
    intrinsics = _intrinsics(bag, topic, camera_info_topic, frames[0].shape[:2])
    found = None if poses == "none" else _camera_poses(bag, camera_frame, stamps, odometry_topic)
    if found is None:
        return CameraRecording(bag, topic, frames, stamps, intrinsics, None, "none")
    per_frame, source = found
    kept = [index for index, pose in enumerate(per_frame) if pose is not None]
    if len(kept) < len(frames):
        LOG.warning("bag %s: %d of %d frames of %s lie outside the recorded %s and are not used",
                    bag, len(frames) - len(kept), len(frames), topic, source)
    if len(kept) < 2:
        raise DataError(f"bag {bag}: the {source} does not cover the frames of {topic} (compare "
                        "their stamps)")
    return CameraRecording(bag, topic, [frames[i] for i in kept], stamps[kept], intrinsics,
                           [per_frame[i] for i in kept], source)


def read_video_recording(span: VideoSpan, horizontal_fov_deg: float,
                         max_side: int = 320) -> CameraRecording:
    """The frames of a video span as a recording without poses, with a pinhole camera of the
    given horizontal field of view centred on the image."""
    if not 10.0 <= horizontal_fov_deg <= 170.0:
        raise DataError(f"a horizontal field of view of {horizontal_fov_deg} degrees is not a "
                        "pinhole camera's (10-170)")
    stamps, frames = [], []
    for stamp, frame in iter_video_frames(span):
        frames.append(_shrunk(frame, max_side, frames[0].shape[:2] if frames else None))
        stamps.append(stamp)
    if len(frames) < 2:
        raise DataError(f"video {span.source_id}: fewer than 2 frames")
    height, width = frames[0].shape[:2]
    focal = 0.5 * width / np.tan(np.radians(horizontal_fov_deg) / 2)
    intrinsics = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2],
                           [0.0, 0.0, 1.0]])
    return CameraRecording(span.path, span.source_id, frames, np.array(stamps, np.int64),
                           intrinsics, None, f"none (video, {horizontal_fov_deg:g} degree field "
                           "of view assumed)")


def _shrunk(frame: np.ndarray, max_side: int, size_hw: tuple[int, int] | None) -> np.ndarray:
    """``frame`` at ``size_hw`` (the recording's first frame's), or, for the first frame, with
    its longer side at most ``max_side``; decoded one by one so a long bag never sits in memory
    at full resolution."""
    if size_hw is None:
        scale = min(1.0, max_side / max(frame.shape[:2]))
        size_hw = (round(frame.shape[0] * scale), round(frame.shape[1] * scale))
    if frame.shape[:2] == size_hw:
        return frame
    return cv2.resize(frame, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)


def _scaled(intrinsics: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """Intrinsics of the image resized by (scale_x, scale_y), pixel centres kept aligned."""
    scaled = intrinsics.copy()
    scaled[0] *= scale_x
    scaled[1] *= scale_y
    scaled[0, 2] = (intrinsics[0, 2] + 0.5) * scale_x - 0.5
    scaled[1, 2] = (intrinsics[1, 2] + 0.5) * scale_y - 0.5
    return scaled


def _camera_info_topic(bag: Path, image_topic: str, requested: str | None) -> str:
    available = topic_counts(bag, (CAMERA_INFO_MSGTYPE,))
    sibling = image_topic.rsplit("/", 1)[0] + "/camera_info"
    if requested:
        if requested not in available:
            raise DataError(f"bag {bag} has no CameraInfo topic {requested} (it has: "
                            f"{', '.join(sorted(available)) or 'none'})")
        return requested
    if sibling in available:
        return sibling
    if len(available) == 1:
        return next(iter(available))
    if not available:
        raise DataError(f"bag {bag} has no sensor_msgs/CameraInfo topic (looked for {sibling}): "
                        "without it the camera intrinsics cannot be known; record camera_info "
                        "with the images (the recorder does by default)")
    raise DataError(f"bag {bag} has several CameraInfo topics ({', '.join(sorted(available))}) "
                    f"and none is {sibling}: name one with --camera-info-topic")


def _intrinsics(bag: Path, image_topic: str, requested: str | None,
                frame_hw: tuple[int, int]) -> np.ndarray:
    """The 3x3 K of the first valid CameraInfo, scaled to the frames' size if it differs."""
    topic = _camera_info_topic(bag, image_topic, requested)
    for _, info in iter_messages(bag, topic, (CAMERA_INFO_MSGTYPE,)):
        matrix = np.asarray(info.k, float).reshape(3, 3)
        if matrix[0, 0] <= 0 or matrix[1, 1] <= 0 or info.width == 0 or info.height == 0:
            continue
        if np.abs(np.asarray(info.d, float)).max(initial=0.0) > 0.05:
            LOG.warning("bag %s: %s has lens distortion %s; depth from motion assumes rectified "
                        "images (record image_rect)", bag, topic, np.round(info.d, 3).tolist())
        height, width = frame_hw
        return _scaled(matrix, width / info.width, height / info.height)
    raise DataError(f"bag {bag}: {topic} holds no calibrated CameraInfo (K is zero): the camera "
                    "intrinsics cannot be known; calibrate the camera")


def _camera_poses(bag: Path, camera_frame: str, stamps: np.ndarray,
                  odometry_topic: str | None) -> tuple[list[CameraPose | None], str] | None:
    tree = _transform_tree(bag)
    odometry = topic_counts(bag, (ODOMETRY_MSGTYPE,))
    if odometry_topic is not None and odometry_topic not in odometry:
        raise DataError(f"bag {bag} has no nav_msgs/Odometry topic {odometry_topic} (it has: "
                        f"{', '.join(sorted(odometry)) or 'none'})")
    if odometry_topic is None and len(odometry) == 1:
        odometry_topic = next(iter(odometry))
    if odometry_topic is not None:
        return _odometry_poses(bag, odometry_topic, tree, camera_frame, stamps)
    if not camera_frame or tree.root_of(camera_frame) == camera_frame:
        return None
    root = tree.root_of(camera_frame)
    if not tree.has_timed_edges(root, camera_frame):
        return None
    poses = [_optical_pose(tree.lookup(root, camera_frame, int(stamp))) for stamp in stamps]
    return poses, f"/tf ({root} -> {camera_frame})"


def _transform_tree(bag: Path) -> TransformTree:
    tree = TransformTree(POSE_TOLERANCE_NS)
    available = topic_counts(bag, (TF_MSGTYPE,))
    for topic, static in TF_TOPICS.items():
        if topic not in available:
            continue
        for _, message in iter_messages(bag, topic, (TF_MSGTYPE,)):
            for edge in message.transforms:
                tree.add(edge.header.frame_id, edge.child_frame_id, header_stamp_ns(edge),
                         _rigid(edge.transform.translation, edge.transform.rotation), static)
    return tree


def _rigid(translation: Any, rotation: Any) -> RigidTransform:
    try:
        return RigidTransform.from_quaternion((translation.x, translation.y, translation.z),
                                              (rotation.x, rotation.y, rotation.z, rotation.w))
    except ValueError as error:
        raise DataError(f"a recorded pose is invalid: {error}") from None


def _odometry_poses(bag: Path, topic: str, tree: TransformTree, camera_frame: str,
                    stamps: np.ndarray) -> tuple[list[CameraPose | None], str]:
    track = TimedTransforms()
    child = ""
    for _, message in iter_messages(bag, topic, (ODOMETRY_MSGTYPE,)):
        pose = message.pose.pose
        track.add(header_stamp_ns(message), _rigid(pose.position, pose.orientation))
        child = child or message.child_frame_id.lstrip("/")
    mount = _camera_mount(bag, tree, child, camera_frame)
    poses = []
    for stamp in stamps:
        body = track.at(int(stamp), POSE_TOLERANCE_NS)
        poses.append(None if body is None else _optical_pose(body @ mount))
    return poses, f"odometry {topic}"


def _camera_mount(bag: Path, tree: TransformTree, body_frame: str,
                  camera_frame: str) -> RigidTransform:
    """Camera optical frame in the odometry's child frame: from /tf_static, else assumed."""
    try:
        mount = tree.lookup(body_frame, camera_frame, 0) if body_frame and camera_frame else None
    except ValueError:
        mount = None
    if mount is not None and not tree.has_timed_edges(body_frame, camera_frame):
        return mount
    LOG.warning("bag %s: no /tf_static link from the odometry frame %r to the camera frame %r; "
                "taking the camera to sit at the odometry frame's origin looking along its x "
                "axis", bag, body_frame, camera_frame)
    return RigidTransform(OPTICAL_IN_BODY, np.zeros(3))


def _optical_pose(camera_in_world: RigidTransform | None) -> CameraPose | None:
    if camera_in_world is None:
        return None
    return CameraPose(camera_in_world.rotation.T, camera_in_world.translation)


def describe_recordings(recordings: Sequence[CameraRecording]) -> str:
    """One short line: how many recordings and frames, and where their poses came from."""
    sources = Counter(recording.pose_source for recording in recordings)
    frames = sum(len(recording.frames) for recording in recordings)
    return (f"{len(recordings)} recordings, {frames} frames; poses from "
            + ", ".join(f"{source} ({count})" for source, count in sorted(sources.items())))
