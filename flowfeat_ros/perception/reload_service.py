"""The ``<node>/reload`` service, served by a helper node on its own thread.

A reload answers only when the new model is loaded (seconds). Served by the perception node's
own executor, that wait would block the camera callbacks; a MultiThreadedExecutor avoids the
block but its dispatch loop can busy-wait (ros2/rclpy#1223): on a 2-core machine it held the GIL
and made inference ~15x slower. So the node spins a SingleThreadedExecutor, and this helper node
(same namespace, name ``<node>_reload``) serves the service under the node's own name.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger

ReloadHandler = Callable[[Trigger.Request, Trigger.Response], Trigger.Response]


class ReloadService:
    """Serves ``<owner fully qualified name>/reload`` with ``handler`` until :meth:`shutdown`."""

    def __init__(self, owner: Node, handler: ReloadHandler) -> None:
        # No global arguments: a `__node:=` remap meant for the owner must not rename this node too.
        self.node = Node(f"{owner.get_name()}_reload", namespace=owner.get_namespace(),
                         context=owner.context, use_global_arguments=False)
        self.name = f"{owner.get_fully_qualified_name()}/reload"
        self.node.create_service(Trigger, self.name, handler)
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="flowfeat-reload", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException):
            self._executor.spin()

    def shutdown(self) -> None:
        """Stop serving and destroy the helper node."""
        self._executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()
