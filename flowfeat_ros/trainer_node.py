"""``trainer_node`` entry point: the on-robot trainer (flowfeat_ros/training/node.py).

Light on purpose: signal handling is in place before rclpy loads (see node_main).
"""

from flowfeat_ros.node_main import run_node


def main(args: list[str] | None = None) -> None:
    """Train until SIGINT/SIGTERM, then save the round in progress; bad configuration exits 2."""
    run_node("trainer_node", "flowfeat_ros.training.node:TrainerNode", args)


if __name__ == "__main__":
    main()
