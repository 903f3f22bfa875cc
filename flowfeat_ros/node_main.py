"""What every node process shares: ``run_node`` (signals, init, build, spin, clean up) and the
parameter table.

Signals follow the one rule of flowfeat_core.cli.stop_signals: the first SIGINT or SIGTERM asks
the node to stop; any later one (a terminal's Ctrl-C reaches the whole process group and
``ros2 launch`` forwards another) is noted once on stderr and ignored, so clean-up such as closing
a bag always completes and no ``KeyboardInterrupt`` traceback is printed. The handlers are
installed before the node's module (torch, rclpy) is imported, which takes seconds: a signal
during start-up stops the process quietly too. A requested stop exits with status 0.

Bad parameters (``ValueError`` / ``ParameterException`` from the node's constructor) print one
line ``<program>: bad parameter: <reason>`` on stderr and exit with status 2.

This module imports only the standard library and the signal rule (flowfeat_core.cli.stop_signals)
at load time, so it can guard those imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowfeat_core.cli.stop_signals import StopSignals

if TYPE_CHECKING:
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node

def declare_parameter_table(
    node: Node, table: Mapping[str, tuple[Any, ParameterDescriptor]]
) -> dict[str, Any]:
    """Declare ``name -> (default, descriptor)`` on ``node``; returns the values it starts with."""
    for name, (default, descriptor) in table.items():
        node.declare_parameter(name, default, descriptor)
    return {name: node.get_parameter(name).value for name in table}


def _import_node_class(path: str) -> type:
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def run_node(program: str, node_class_path: str, args: list[str] | None) -> None:
    """Run the node class at ``node_class_path`` (``"package.module:Class"``) until it is done
    or the process is asked to stop; meant to be the last thing a node process does.

    The class may define ``spin()`` (default: ``rclpy.spin(node)``) and ``finish()``, which
    runs once after spinning, whatever ended it, before the node is destroyed.
    """
    stop = StopSignals(program)
    stop.install()
    try:
        _run(stop, program, node_class_path, args)
    finally:
        stop.ignore_from_now_on()


def _run(stop: StopSignals, program: str, node_class_path: str, args: list[str] | None) -> None:
    node_class = _import_node_class(node_class_path)
    import rclpy  # after the handlers: importing takes long enough to be interrupted
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException

    if stop.requested:
        return
    rclpy.init(args=args)
    try:
        node = node_class()
    except (ValueError, ParameterException) as error:
        if stop.requested:
            return rclpy.try_shutdown()
        print(f"{program}: bad parameter: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    except Exception:
        rclpy.try_shutdown()
        if stop.requested:  # the context was shut down under the constructor
            return
        raise
    try:
        if not stop.requested:
            getattr(node, "spin", lambda: rclpy.spin(node))()
    except ExternalShutdownException:
        pass
    except Exception:
        if not stop.requested:  # e.g. "context is not valid" from a wait set after a signal
            raise
    finally:
        getattr(node, "finish", lambda: None)()
        node.destroy_node()
        rclpy.try_shutdown()
