"""The one QoS vocabulary of every node here: ``qos_reliability`` is ``best_effort`` (sensor data)
or ``reliable``, as REP 2003 and rclpy name it."""

from __future__ import annotations

from rclpy.qos import QoSProfile, ReliabilityPolicy

RELIABILITY_CHOICES = ("best_effort", "reliable")


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    """A keep-last profile of ``depth`` with the named reliability."""
    policy = {"best_effort": ReliabilityPolicy.BEST_EFFORT,
              "reliable": ReliabilityPolicy.RELIABLE}[reliability]
    return QoSProfile(depth=depth, reliability=policy)
