"""The shipped Fast DDS profile lets full-size camera images through best-effort QoS."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_perception_support import (
    Diagnostics,
    PerceptionProcess,
    base_params,
    checkpoint,
    peer,
    spin_for,
    spin_until,
)

from flowfeat_ros.dds_profile import PROFILE_VARIABLES, profile_variable, use_large_message_profile

pytestmark = [pytest.mark.ros, pytest.mark.slow]
BUILTIN_TRANSPORTS_PROFILE = Path(__file__).parent / "data" / "fastdds_builtin_transports.xml"
__all__ = ["checkpoint", "peer"]  # fixtures used by this module

COUNT_FRAMES = textwrap.dedent(
    """
    import os, subprocess, sys, time
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    video = sys.argv[1]
    bare = {k: v for k, v in os.environ.items() if not k.endswith("_DEFAULT_PROFILES_FILE")}
    publisher = subprocess.Popen([sys.executable, "-m", "flowfeat_ros.video_publisher", "--ros-args",
                                  "-p", f"source:={video}", "-p", "loop:=true", "-p", "rate:=10.0"],
                                 env=bare)  # as `ros2 run` starts it: no profile variable
    rclpy.init()
    node = rclpy.create_node("frame_counter")
    times = []
    node.create_subscription(Image, "/camera/image_raw", lambda _: times.append(time.monotonic()),
                             qos_profile_sensor_data)
    start = time.monotonic()
    while time.monotonic() - start < 8.0:
        rclpy.spin_once(node, timeout_sec=0.05)
    publisher.terminate()
    publisher.wait(timeout=20)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    print(f"{rate:.2f}")
    """
)


def test_profile_is_used_unless_the_user_chose_one(repo_root: Path) -> None:
    environ: dict[str, str] = {}
    assert use_large_message_profile(repo_root / "config", environ)
    assert Path(environ["FASTDDS_DEFAULT_PROFILES_FILE"]).is_file(), "Fast DDS 3 (Kilted, PyPI wheels)"
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in environ, "Fast DDS 3 warns about it on every start"
    fast_dds_2, fast_dds_3 = "FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"
    for distro, variable in (("jazzy", fast_dds_2), ("humble", fast_dds_2), ("kilted", fast_dds_3)):
        environ = {"ROS_DISTRO": distro}
        assert use_large_message_profile(repo_root / "config", environ)
        assert set(environ) == {"ROS_DISTRO", variable} and Path(environ[variable]).is_file(), distro
    chosen = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    assert not use_large_message_profile(repo_root / "config", chosen)
    assert chosen == {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}


def test_full_size_images_arrive_at_camera_rate_over_best_effort(repo_root: Path, sample_video: Path) -> None:
    """video_publisher started on its own (``ros2 run``) used to starve the subscriber (1.7 of 10
    Hz): every node now uses the shipped profile unless the user chose one. The subscriber here
    is given it, as the perception node gives it to itself."""
    environ = {key: value for key, value in os.environ.items() if key not in PROFILE_VARIABLES}
    use_large_message_profile(repo_root / "config", environ)
    result = subprocess.run(
        [sys.executable, "-c", COUNT_FRAMES, str(sample_video)],  # vtest.avi: 768x576 rgb8, 1.3 MB
        capture_output=True, text=True, timeout=120, env=environ, cwd=repo_root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rate = float(result.stdout.split()[-1])
    assert rate > 8.0, (rate, result.stderr[-2000:])


def _environment(profile: bool, repo_root: Path) -> dict[str, str]:
    """Without the profile variable (every node then uses the shipped profile by itself), or
    with the user's own profile that keeps Fast DDS's built-in transports."""
    environ = {key: value for key, value in os.environ.items() if key not in PROFILE_VARIABLES}
    if not profile:
        environ[profile_variable(environ)] = str(BUILTIN_TRANSPORTS_PROFILE)
    return environ


def _camera(namespace: str, video: Path, profile: bool, repo_root: Path) -> subprocess.Popen:
    """vtest.avi at full size (768x576 rgb8) and 15 Hz, best effort, as ``<namespace>/image``."""
    return subprocess.Popen(
        [sys.executable, "-m", "flowfeat_ros.video_publisher", "--ros-args", "-r", f"__ns:={namespace}",
         "-r", "camera/image_raw:=image", "-r", "camera/camera_info:=camera_info",
         "-p", f"source:={video}", "-p", "loop:=true", "-p", "rate:=15.0",
         "-p", "qos_reliability:=best_effort"],
        env=_environment(profile, repo_root), cwd=repo_root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_starved_camera_input_is_a_warning_with_the_fix(peer, checkpoint, repo_root, sample_video, tmp_path):
    """A camera started without the profile (outside the launch file) loses most frames on the way
    to a best-effort subscriber; /diagnostics must say WARN, why, and which variable fixes it."""
    params = base_params(checkpoint, qos_reliability="best_effort", qos_depth=1)
    node = PerceptionProcess(tmp_path / "node.log", params, "/starved", environ=_environment(True, repo_root))
    diagnostics = Diagnostics(peer, "/starved/perception")
    camera = _camera("/starved", sample_video, True, repo_root)
    try:
        spin_until(peer, lambda: int(diagnostics.values.get("received_frames", 0)) > 20, 60,
                   "frames from the camera that uses the profile", node)
        spin_for(peer, 3.0)
        assert diagnostics.level == 0 and "starved" not in diagnostics.message, diagnostics.message
        camera.terminate()
        camera.wait(timeout=20)
        camera = _camera("/starved", sample_video, False, repo_root)
        spin_until(peer, lambda: "input starved" in diagnostics.message, 40, "a starved-input warning", node)
        assert diagnostics.level == 1, diagnostics.message  # WARN
        profile = repo_root / "config" / "fastdds_large_messages.xml"
        assert f"{profile_variable()}={profile}" in diagnostics.message
        assert int(diagnostics.values["input_lost_frames"]) >= 3
    finally:
        camera.kill()
        camera.wait(timeout=20)
        assert node.stop() == 0, node.output()
