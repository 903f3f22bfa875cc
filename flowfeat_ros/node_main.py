"""What every node shares: ``run_node`` (init, build, spin, clean up) and the parameter table.

Bad parameters (``ValueError`` / ``ParameterException`` from the node's constructor) print one
line ``<program>: bad parameter: <reason>`` on stderr and exit with status 2; SIGINT/SIGTERM end
the spin, then ``on_exit`` (closing files, stopping threads) runs before the node is destroyed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

NodeT = TypeVar("NodeT", bound=Node)


def declare_parameter_table(
    node: Node, table: Mapping[str, tuple[Any, ParameterDescriptor]]
) -> dict[str, Any]:
    """Declare ``name -> (default, descriptor)`` on ``node``; returns the values it starts with."""
    for name, (default, descriptor) in table.items():
        node.declare_parameter(name, default, descriptor)
    return {name: node.get_parameter(name).value for name in table}


def run_node(
    program: str,
    make_node: Callable[[], NodeT],
    args: list[str] | None,
    spin: Callable[[NodeT], None] = rclpy.spin,
    on_exit: Callable[[NodeT], None] = lambda node: None,
) -> None:
    """Run ``make_node()`` under ``spin`` until it returns or the process is asked to stop."""
    rclpy.init(args=args)
    try:
        node = make_node()
    except (ValueError, ParameterException) as error:
        print(f"{program}: bad parameter: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    try:
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        on_exit(node)
        node.destroy_node()
        rclpy.try_shutdown()
