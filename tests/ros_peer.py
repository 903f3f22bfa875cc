"""Test helper: a test-side rclpy node in its own context, spun by ``node.test_executor``."""

from __future__ import annotations

from collections.abc import Iterator

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def isolated_test_node(name: str) -> Iterator[Node]:
    """Yield a node in a fresh context (for a pytest fixture); shut everything down afterwards."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.test_executor = executor
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
