"""The ROS-workspace route: ``colcon build`` of this package in a temporary workspace (plain and
``--symlink-install``), then the install space checked where ``ros2 run`` / ``ros2 launch`` look."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_packaging import BUILD_INPUTS, OPTIONAL_BUILD_INPUTS, PACKAGE_NAME, setup_py_console_scripts

pytestmark = pytest.mark.slow  # minutes of training or exporting on the 2-core machine

COLCON = Path(sys.executable).with_name("colcon")


@pytest.fixture(scope="module", params=["plain", "symlink-install"])
def install_space(
    request: pytest.FixtureRequest, repo_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """install/<package> of a fresh workspace with this package (a copy) under src/."""
    if not COLCON.is_file():
        pytest.fail(f"{COLCON} is missing: scripts/setup_env.sh installs colcon-core and colcon-ros",
                    pytrace=False)
    workspace = tmp_path_factory.mktemp(f"colcon_{request.param}")
    source = workspace / "src" / PACKAGE_NAME
    source.mkdir(parents=True)
    for name in BUILD_INPUTS + OPTIONAL_BUILD_INPUTS:
        origin = repo_root / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif origin.is_file():
            shutil.copy2(origin, source / name)
    command = [str(COLCON), "build", "--event-handlers", "console_direct-"]
    if request.param == "symlink-install":
        command.append("--symlink-install")
    result = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout}\n{result.stderr}"
    return workspace / "install" / PACKAGE_NAME


def test_install_space_has_manifest_launch_config_and_ament_marker(install_space: Path,
                                                                   repo_root: Path) -> None:
    share = install_space / "share" / PACKAGE_NAME
    assert (share / "package.xml").read_bytes() == (repo_root / "package.xml").read_bytes()
    assert (install_space / "share/ament_index/resource_index/packages" / PACKAGE_NAME).is_file()
    for folder in ("launch", "config"):
        expected = sorted(path.name for path in (repo_root / folder).iterdir() if path.is_file())
        assert sorted(path.name for path in (share / folder).iterdir()) == expected, folder
    assert (share / "config" / "flowfeat.rviz").is_file()


def test_every_console_script_is_where_ros2_run_looks(install_space: Path, repo_root: Path) -> None:
    for script in setup_py_console_scripts(repo_root):
        path = install_space / "lib" / PACKAGE_NAME / script
        assert path.is_file() and os.access(path, os.X_OK), script


def sourced_environment(install_base: Path) -> dict[str, str]:
    """The environment after ``. install/local_setup.sh``, as a user's shell has it."""
    result = subprocess.run(["sh", "-c", '. "$0/local_setup.sh" && env -0', str(install_base)],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return dict(entry.split("=", 1) for entry in result.stdout.split("\0") if "=" in entry)


def test_installed_node_runs_from_the_install_space(install_space: Path, tmp_path: Path) -> None:
    """``ros2 run flowfeat_ros video_publisher`` runs this script in the sourced workspace: it must
    start and refuse a bad parameter with its one-line message, importing the workspace's copy."""
    workspace = install_space.parents[1]
    env = sourced_environment(install_space.parent)
    script = install_space / "lib" / PACKAGE_NAME / "video_publisher"
    result = subprocess.run([sys.executable, str(script), "--ros-args", "-p", "source:=/no/such.avi"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "video_publisher: bad parameter: source '/no/such.avi' does not exist"
    located = subprocess.run([sys.executable, "-c", "import flowfeat_ros; print(flowfeat_ros.__file__)"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert Path(located.stdout.strip()).is_relative_to(workspace), located.stdout
