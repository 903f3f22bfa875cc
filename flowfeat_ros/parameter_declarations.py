"""ROS 2 parameters from the settings declarations of :mod:`flowfeat_core.settings`: one
descriptor per declared field (description, range, read-only, choices as a constraint text), and
the declaration of a whole settings dataclass on a node."""

from __future__ import annotations

import typing
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from flowfeat_core.settings import Declared, check_ranges, declared

Settings = TypeVar("Settings")


def descriptor(item: Declared) -> ParameterDescriptor:
    """The ParameterDescriptor of one declared setting."""
    info = item.info
    result = ParameterDescriptor(description=info.description, read_only=info.read_only)
    if info.choices:
        result.additional_constraints = "one of: " + ", ".join(info.choices)
    if info.low is not None and item.type is int:
        result.integer_range = [IntegerRange(from_value=int(info.low), to_value=int(info.high))]
    elif info.low is not None:
        result.floating_point_range = [FloatingPointRange(from_value=float(info.low),
                                                          to_value=float(info.high))]
    return result


def declare_settings(node: Node, cls: type[Settings]) -> Settings:
    """Declare every setting of ``cls`` on ``node`` and return the values it starts with.
    Raises ValueError (a bad parameter: the node exits 2 with one line) when a value is outside
    its declared range or choices."""
    values: dict[str, Any] = {}
    for item in declared(cls):
        if typing.get_origin(item.type) is tuple and not item.default:  # an empty string array
            node.declare_parameter(item.name, Parameter.Type.STRING_ARRAY, descriptor(item))
            try:
                values[item.name] = tuple(node.get_parameter(item.name).value or ())
            except ParameterUninitializedException:
                values[item.name] = tuple(item.default)
            continue
        default = list(item.default) if isinstance(item.default, tuple) else item.default
        value = node.declare_parameter(item.name, default, descriptor(item)).value
        values[item.name] = tuple(value) if isinstance(item.default, tuple) else value
    settings = cls(**values)
    check_ranges(settings)
    return settings
