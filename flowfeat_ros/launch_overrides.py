"""What both launchers (launch/perception.launch.py, launch_without_ros) decide the same way:
which arguments override the perception YAML, and whether a parameter file is usable.

An argument left empty (the default) is not passed to the node, so the value in the YAML file
takes effect; passing every argument with a default would silently override the YAML.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

#: A ROS 2 topic name (design doc "Topic and Service name mapping to DDS"): tokens of letters,
#: digits and underscores, not starting with a digit, separated by single slashes; an optional
#: leading ``/`` or ``~/``.
TOPIC_NAME = re.compile(r"^(~/|/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def check_topic_name(argument: str, name: str) -> None:
    """Raise ValueError when the launch argument ``argument`` is not a valid topic name (the
    node would fail to parse its remapping rule with a traceback)."""
    if not TOPIC_NAME.match(name):
        raise ValueError(f"{argument} {name!r} is not a valid ROS 2 topic name (letters, digits, "
                         "underscores and single slashes; no token may start with a digit)")

#: Perception parameters the launchers accept as arguments of the same name.
OVERRIDABLE_PARAMETERS = ("checkpoint", "device")


def perception_overrides(values: dict[str, str]) -> dict[str, str]:
    """The overridable parameters the user actually gave (non-empty values only)."""
    unknown = set(values) - set(OVERRIDABLE_PARAMETERS)
    if unknown:
        raise ValueError(f"not overridable from a launcher: {sorted(unknown)}")
    return {name: value for name, value in values.items() if value}


def check_parameter_file(path: str | Path, node_name: str) -> None:
    """Raise ValueError saying why ``path`` is not a ROS 2 parameter file with a section for
    ``node_name``. rclpy only warns about such a file and runs the node on built-in defaults."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"parameter file {path} does not exist")
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())  # one line: PyYAML's message spans several
        raise ValueError(f"parameter file {path} is not readable YAML: {reason}") from None
    sections = [
        value for key, value in (content.items() if isinstance(content, dict) else [])
        if str(key).rsplit("/", 1)[-1] in (node_name, "**")
    ]  # fmt: skip
    if not sections:
        raise ValueError(f"parameter file {path} has no section for node {node_name!r} "
                         f"(expected a key like /**/{node_name})")
    if not all(isinstance(s, dict) and isinstance(s.get("ros__parameters"), dict)
               for s in sections):
        raise ValueError(f"parameter file {path}: the {node_name!r} section needs a "
                         "ros__parameters mapping")
