"""Where this package's installed files are: share/flowfeat_ros in a ROS 2 install space, else the
source checkout (PyPI / editable route)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]


@cache
def config_dir() -> Path:
    """The directory holding perception.yaml, recorder.yaml and the Fast DDS profile."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:  # no ROS 2 installation: the PyPI route runs from the checkout
        return SOURCE_ROOT / "config"
    try:
        return Path(get_package_share_directory("flowfeat_ros")) / "config"
    except (PackageNotFoundError, OSError):  # not installed there, or AMENT_PREFIX_PATH unset
        return SOURCE_ROOT / "config"
