"""The one ``main()`` every node shares: init, build the node, spin, clean up.

Bad parameters (``ValueError`` / ``ParameterException`` from the node's constructor) print one
line ``<program>: bad parameter: <reason>`` on stderr and exit with status 2; SIGINT/SIGTERM end
the spin, then ``on_exit`` (closing files, stopping threads) runs before the node is destroyed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

NodeT = TypeVar("NodeT", bound=Node)


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
