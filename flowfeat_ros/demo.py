"""Demo: vtest.avi through video_publisher into the perception node; prints throughput, latency
and dropped frames and saves a few output images as PNG.

    python -m flowfeat_ros.demo --seconds 20 --out outputs/perception_demo [--checkpoint default]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import rclpy

from flowfeat_ros.dds_profile import use_large_message_profile
from flowfeat_ros.image_conversion import image_msg_to_array
from flowfeat_ros.launch_without_ros import NodeGroup, build_commands, parser
from flowfeat_ros.package_paths import config_dir
from flowfeat_ros.perception.stream_monitor import StreamMonitor

VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
SAVED_TOPICS = {"/camera/image_raw": "input", "/flowfeat/features/pca": "pca",
                "/flowfeat/depth/colored": "depth", "/flowfeat/segmentation/overlay": "segmentation"}
SNAPSHOTS = 3


def _save(monitor: StreamMonitor, out: Path, index: int) -> list[Path]:
    """Save the newest PCA output and the input and probe outputs of the same frame (stamp)."""
    saved = []
    stamp = monitor.latest["/flowfeat/features/pca"].header.stamp
    for topic, label in SAVED_TOPICS.items():
        msg = monitor.with_stamp(topic, stamp)
        if msg is None:
            continue
        pixels = image_msg_to_array(msg)
        bgr = pixels[:, :, ::-1] if msg.encoding == "rgb8" else pixels
        path = out / f"{index:02d}_{label}.png"
        cv2.imwrite(str(path), bgr)
        saved.append(path)
    return saved


def main(argv: list[str] | None = None) -> None:
    """Run the demo; exits non-zero when the pipeline produced nothing."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=Path("outputs/perception_demo"))
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--video", default=VIDEO)
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE")
    args = p.parse_args(argv)
    if not Path(args.video).is_file():
        p.error(f"video {args.video} does not exist (apt-get install opencv-doc)")
    args.out.mkdir(parents=True, exist_ok=True)
    use_large_message_profile(config_dir())
    launch_args = parser().parse_args(["--video", args.video, "--checkpoint", args.checkpoint,
                                       "--config", str(config_dir() / "perception.yaml"),
                                       *[f"--param={p}" for p in args.param]])
    group = NodeGroup(build_commands(launch_args))
    rclpy.init()
    node = rclpy.create_node("flowfeat_demo_viewer")
    monitor = StreamMonitor(node, list(SAVED_TOPICS))
    group.start()
    saved: list[Path] = []
    snapshot = 0
    try:
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            failure = group.failed()
            if failure:
                print(f"demo: {failure[0]} exited with status {failure[1]}", file=sys.stderr)
                sys.exit(1)
            rclpy.spin_once(node, timeout_sec=0.05)
            due = (snapshot + 1) * args.seconds / (SNAPSHOTS + 1)
            if snapshot < SNAPSHOTS and time.monotonic() - start >= due and monitor.times[
                    "/flowfeat/features/pca"]:
                saved += _save(monitor, args.out, snapshot)
                snapshot += 1
    finally:
        code = group.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    topic = "/flowfeat/features/pca"
    median, p95 = monitor.latency_ms(topic)
    print(f"output: {len(monitor.times[topic])} frames, {monitor.rate_hz(topic):.2f} Hz "
          f"(camera {monitor.rate_hz('/camera/image_raw'):.2f} Hz)")
    print(f"latency stamp->receive: median {median:.1f} ms, p95 {p95:.1f} ms")
    print(f"dropped frames: {monitor.diagnostics.get('dropped_frames', '?')}, node stages (ms): "
          + ", ".join(f"{k[6:-3]} {v}" for k, v in monitor.diagnostics.items()
                      if k.startswith("stage_")))
    print(f"saved {len(saved)} images to {args.out}")
    if not monitor.times[topic]:
        print("demo: no output received", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
