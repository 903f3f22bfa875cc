"""Launch arguments that override the perception YAML, shared by both launchers.

An argument left empty (the default) is not passed to the node, so the value in the YAML file
takes effect; passing every argument with a default would silently override the YAML.
"""

from __future__ import annotations

#: Perception parameters the launchers accept as arguments of the same name.
OVERRIDABLE_PARAMETERS = ("checkpoint", "device")


def perception_overrides(values: dict[str, str]) -> dict[str, str]:
    """The overridable parameters the user actually gave (non-empty values only)."""
    unknown = set(values) - set(OVERRIDABLE_PARAMETERS)
    if unknown:
        raise ValueError(f"not overridable from a launcher: {sorted(unknown)}")
    return {name: value for name, value in values.items() if value}
