"""The one /diagnostics convention of every node here: a single DiagnosticStatus named
``<node's fully qualified name>: <kind>`` (REP 107's ``name`` is free text; the FQN keeps nodes in
different namespaces apart), string values, floats with 3 decimals, stamped with the node's clock."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.publisher import Publisher

#: The clock of every periodic job that must run whatever the node clock does: with
#: use_sim_time and no /clock (yet), ROS-time timers never fire, and /diagnostics would go silent
#: exactly when something is wrong.
WALL_CLOCK = Clock(clock_type=ClockType.STEADY_TIME)


def level_value(level: bytes | int) -> int:
    """A DiagnosticStatus level as an int (rclpy gives the byte field as ``bytes``)."""
    return int.from_bytes(level, "little") if isinstance(level, bytes) else int(level)


def diagnostic_status(name: str, hardware_id: str, values: dict[str, object],
                      level: bytes, message: str) -> DiagnosticStatus:
    """A DiagnosticStatus with string key/values (floats with 3 decimals)."""
    def text(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    return DiagnosticStatus(level=level, name=name, message=message,
                            hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=text(v)) for k, v in values.items()])


def publish_status(node: Node, publisher: Publisher, kind: str, level: bytes, message: str,
                   values: dict[str, object], hardware_id: str = "flowfeat") -> None:
    """Publish ``node``'s status ``<FQN>: <kind>`` on ``publisher`` (a /diagnostics publisher)."""
    status = diagnostic_status(f"{node.get_fully_qualified_name()}: {kind}", hardware_id, values,
                               level, message)
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(array)
