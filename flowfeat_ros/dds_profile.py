"""Use the Fast DDS profile for large messages (config/fastdds_large_messages.xml) by default."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_NAME = "fastdds_large_messages.xml"


def use_large_message_profile(config_dir: Path, environ: MutableMapping[str, str] = os.environ) -> bool:
    """Point Fast DDS at the shipped profile unless the user already chose one; call before
    ``rclpy.init`` (child processes inherit it). Returns whether the profile was set."""
    profile = config_dir / PROFILE_NAME
    if any(environ.get(name) for name in PROFILE_VARIABLES) or not profile.is_file():
        return False
    environ[PROFILE_VARIABLES[0]] = str(profile)
    return True
