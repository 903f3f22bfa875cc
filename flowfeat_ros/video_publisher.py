"""``video_publisher`` entry point: a video, image folder or bag played as a camera
(flowfeat_ros/playback/node.py).

Light on purpose: signal handling is in place before rclpy loads (see node_main).
"""

from flowfeat_ros.node_main import run_node


def main(args: list[str] | None = None) -> None:
    """Play the source and exit at its end (or run until SIGINT/SIGTERM with ``loop``)."""
    run_node("video_publisher", "flowfeat_ros.playback.node:VideoPublisher", args)


if __name__ == "__main__":
    main()
