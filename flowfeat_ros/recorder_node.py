"""``recorder_node`` entry point: the rosbag2 recorder (flowfeat_ros/recording/node.py).

Light on purpose: signal handling is in place before rclpy loads (see node_main).
"""

from flowfeat_ros.node_main import run_node


def main(args: list[str] | None = None) -> None:
    """Record until SIGINT/SIGTERM, then close the bag; bad configuration exits with status 2."""
    run_node("recorder_node", "flowfeat_ros.recording.node:RecorderNode", args)


if __name__ == "__main__":
    main()
