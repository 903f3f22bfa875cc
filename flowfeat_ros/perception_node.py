"""``perception_node`` entry point: the FlowFeat perception node (flowfeat_ros/perception/node.py).

Light on purpose: signal handling is in place before torch and rclpy load (see node_main).
"""

from flowfeat_ros.node_main import run_node


def main(args: list[str] | None = None) -> None:
    """Run until SIGINT/SIGTERM; bad configuration exits with status 2."""
    run_node("perception_node", "flowfeat_ros.perception.node:PerceptionNode", args)


if __name__ == "__main__":
    main()
