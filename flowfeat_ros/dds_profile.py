"""Use the Fast DDS profile for large messages (config/fastdds_large_messages.xml) by default."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

#: Fast DDS 3.x (ROS 2 Kilted) reads the first, Fast DDS 2.x (Jazzy, Humble) the second: both are
#: set, so the profile applies whichever Fast DDS the ROS 2 installation ships.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_NAME = "fastdds_large_messages.xml"


def use_large_message_profile(config_dir: Path, environ: MutableMapping[str, str] = os.environ) -> bool:
    """Point Fast DDS at the shipped profile unless the user already chose one; call before
    ``rclpy.init`` (child processes inherit it). Returns whether the profile was set."""
    profile = config_dir / PROFILE_NAME
    if any(environ.get(name) for name in PROFILE_VARIABLES) or not profile.is_file():
        return False
    for name in PROFILE_VARIABLES:
        environ[name] = str(profile)
    return True
