"""Benchmark (not a test): end-to-end latency and output rate of the perception node.

Starts perception_node (config/perception.yaml) in a subprocess, publishes vtest.avi frames
resized to ``--size`` (640x480) at ``--camera-hz``, subscribes to the chosen outputs, and after a
warm-up reports per run: output rate, stamp->receive latency (median/p95), the node's
stamp->publish latency and per-stage timings from /diagnostics and the share of time spent
outside the model. Before the runs it reports how long after launch the first output came and
when the node served its final backend (``backend: auto`` swaps in a compiled one; frames are
streamed meanwhile). ``--track N`` prompts N objects (boxes side by side across the image centre)
and subscribes to flowfeat/track/mask as well, to measure what tracking adds.

    python -m flowfeat_ros.bench_pipeline --checkpoint default --runs 3 --seconds 10
    python -m flowfeat_ros.bench_pipeline --size 320x240 --track 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import cv2
import rclpy
from geometry_msgs.msg import Point32, PolygonInstanceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from flowfeat_core.inference.auto_backend import EAGER_FALLBACK
from flowfeat_ros.dds_profile import use_large_message_profile
from flowfeat_ros.image_conversion import rgb8_to_msg
from flowfeat_ros.package_paths import config_dir
from flowfeat_ros.perception.stream_monitor import StreamMonitor

VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def _frames(count: int, size: tuple[int, int]) -> list:
    capture = cv2.VideoCapture(VIDEO)
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            raise SystemExit(f"bench_pipeline: cannot read {VIDEO}")
        frames.append(cv2.cvtColor(cv2.resize(bgr, size), cv2.COLOR_BGR2RGB))
    return frames


def _box_prompts(count: int, width: int, height: int) -> list[PolygonInstanceStamped]:
    """``count`` boxes side by side across the middle third of the image, for the newest frame
    (stamp zero), object ids 1..count."""
    prompts = []
    for index in range(count):
        box_width = 2 * width / 3 / count
        left = width / 6 + index * box_width
        msg = PolygonInstanceStamped()
        msg.polygon.id = index + 1
        msg.polygon.polygon.points = [Point32(x=left, y=height / 3),
                                      Point32(x=left + box_width - 1, y=2 * height / 3)]
        prompts.append(msg)
    return prompts


class _Camera:
    """Publishes the bench frames at ``camera_hz`` (and the prompts once the node listens),
    spinning the bench node in between; ends the bench if the perception node exits."""

    def __init__(self, node, node_proc: subprocess.Popen, args: argparse.Namespace,
                 size: tuple[int, int]) -> None:
        self.node, self.node_proc, self.args, self.size = node, node_proc, args, size
        self.publisher = node.create_publisher(
            Image, "/image", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.frames = _frames(30, size)
        self.prompt = node.create_publisher(
            PolygonInstanceStamped, "/flowfeat/track/prompt_region",
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)) if args.track else None
        self.prompted = False
        self.sent = 0

    def stream(self, seconds: float, until=lambda: False) -> float:
        """Publish for ``seconds`` or until ``until()``; returns the seconds it took."""
        start = time.monotonic()
        first = self.sent
        while time.monotonic() - start < seconds and not until():
            if self.node_proc.poll() is not None:
                raise SystemExit(f"bench_pipeline: perception_node exited "
                                 f"({self.node_proc.returncode})")
            if self.prompt is not None and not self.prompted and self.prompt.get_subscription_count():
                for msg in _box_prompts(self.args.track, *self.size):
                    self.prompt.publish(msg)
                self.prompted = True
            header = Header(stamp=self.node.get_clock().now().to_msg(), frame_id="bench")
            self.publisher.publish(rgb8_to_msg(self.frames[self.sent % len(self.frames)], header))
            self.sent += 1
            deadline = start + (self.sent - first) / self.args.camera_hz
            while time.monotonic() < deadline:
                rclpy.spin_once(self.node, timeout_sec=max(0.0, deadline - time.monotonic()))
        return time.monotonic() - start


def _backend_settled(diagnostics: dict[str, str]) -> bool:
    """The node serves its final backend: a non-eager one, or eager for good (not ``auto``, or
    ``auto`` that refused its build)."""
    if not diagnostics:
        return False
    if diagnostics.get("backend_setting") != "auto" or diagnostics.get("backend") != "torch":
        return True
    return diagnostics.get("backend_status", "").endswith(EAGER_FALLBACK)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one line per run plus the medians."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--backend-timeout", type=float, default=600.0,
                   help="longest wait, before the runs, for the node to serve its final backend "
                   "(backend auto builds one in the background)")
    p.add_argument("--camera-hz", type=float, default=30.0)
    p.add_argument("--outputs", default="features,features/pca",
                   help="comma-separated outputs under /flowfeat to subscribe to")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE")
    p.add_argument("--size", default="640x480", help="camera frame WIDTHxHEIGHT")
    p.add_argument("--track", type=int, default=0, metavar="N",
                   help="objects to track (box prompts); 0: no tracking")
    args = p.parse_args(argv)
    width, height = (int(side) for side in args.size.lower().split("x"))
    use_large_message_profile(config_dir())
    command = [sys.executable, "-m", "flowfeat_ros.perception_node", "--ros-args",
               "--params-file", str(config_dir() / "perception.yaml"),
               "-p", f"checkpoint:={args.checkpoint}", "-p", "device:=cpu"]
    for param in args.param:
        command += ["-p", param]
    launched = time.monotonic()
    node_proc = subprocess.Popen(command)
    rclpy.init(args=[sys.argv[0]])  # our options are not ROS arguments
    node = rclpy.create_node("flowfeat_bench")
    topics = [f"/flowfeat/{name.strip()}" for name in args.outputs.split(",")]
    if args.track:
        topics.append("/flowfeat/track/mask")
    monitor = StreamMonitor(node, topics)
    camera = _Camera(node, node_proc, args, (width, height))
    results = []
    try:
        camera.stream(args.backend_timeout, lambda: bool(monitor.times[topics[-1]]))
        first_output = time.monotonic() - launched
        camera.stream(args.backend_timeout, lambda: _backend_settled(monitor.diagnostics))
        d = monitor.diagnostics
        print(f"first output {first_output:.1f} s after launch; backend {d.get('backend')} "
              f"serves {time.monotonic() - launched:.1f} s after launch: "
              f"{d.get('backend_status')}")
        for run in range(args.runs):
            camera.stream(args.warmup)
            monitor.reset()
            camera.stream(args.seconds)
            d = monitor.diagnostics
            median, p95 = monitor.latency_ms(topics[-1])  # the track mask when tracking
            result = {"rate_hz": monitor.rate_hz(topics[-1]), "receive_ms": median,
                      "receive_p95_ms": p95,
                      "publish_ms": float(d.get("latency_stamp_ms_median", "nan")),
                      "outside_share": float(d.get("outside_model_share", "nan"))}
            results.append(result)
            stages = ", ".join(f"{k[6:-3]} {v}" for k, v in d.items() if k.startswith("stage_"))
            print(f"run {run + 1}: output {result['rate_hz']:.2f} Hz, stamp->receive median "
                  f"{median:.1f} ms p95 {p95:.1f} ms, stamp->publish median "
                  f"{result['publish_ms']:.1f} ms, outside model {result['outside_share']:.1%}; "
                  f"stages ms: {stages}; dropped {d.get('dropped_frames')}; backend "
                  f"{d.get('backend')}")
    finally:
        node_proc.send_signal(2)
        node_proc.wait(timeout=20)
        node.destroy_node()
        rclpy.try_shutdown()
    print("median over runs: " + ", ".join(
        f"{key} {statistics.median(r[key] for r in results):.3f}" for key in results[0]))


if __name__ == "__main__":
    main()
