"""Use the Fast DDS profile for large messages (config/fastdds_large_messages.xml) by default."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

#: Fast DDS 3.x (ROS 2 Kilted and later) reads the first, Fast DDS 2.x (Humble, Iron, Jazzy) only
#: the second; 3.x warns on every node start when the second is set, so exactly one is set.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_NAME = "fastdds_large_messages.xml"
#: ROS 2 distributions whose Fast DDS is 2.x.
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def profile_variable(environ: Mapping[str, str] = os.environ) -> str:
    """The variable the installed Fast DDS reads, from ``ROS_DISTRO`` (unset, e.g. the PyPI
    Kilted wheels: Fast DDS 3)."""
    distro = environ.get("ROS_DISTRO", "").lower()
    return PROFILE_VARIABLES[1] if distro in FAST_DDS_2_DISTROS else PROFILE_VARIABLES[0]


def use_large_message_profile(config_dir: Path, environ: MutableMapping[str, str] = os.environ) -> bool:
    """Point Fast DDS at the shipped profile unless the user already chose one; call before
    ``rclpy.init`` (child processes inherit it). Returns whether the profile was set."""
    profile = config_dir / PROFILE_NAME
    if any(environ.get(name) for name in PROFILE_VARIABLES) or not profile.is_file():
        return False
    environ[profile_variable(environ)] = str(profile)
    return True
