"""Shared pytest set-up: isolate ROS 2 traffic per test session and locate real test data."""

from __future__ import annotations

import os
import random

# Each pytest process talks on its own DDS domain, on localhost only, so parallel runs never cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
