"""Start the perception pipeline without ROS 2 launch (PyPI installs have no ``launch``).

Starts the same nodes as ``launch/perception.launch.py`` with the same YAML, as subprocesses:

    python -m flowfeat_ros.launch_without_ros --camera-topic /camera/image_raw \
        --config config/perception.yaml --checkpoint default [--record] [--train] [--video FILE]

``--video`` also plays a video file / image folder / rosbag2 as the camera (video_publisher on
``/camera/image_raw``). Ctrl-C (SIGINT) or SIGTERM is forwarded to every node as SIGINT; the
command exits 0 when all of them shut down cleanly, else with the first failing node's code.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flowfeat_ros.dds_profile import use_large_message_profile
from flowfeat_ros.launch_overrides import (
    OVERRIDABLE_PARAMETERS,
    check_parameter_file,
    check_topic_name,
    perception_overrides,
)
from flowfeat_ros.package_paths import config_dir

STOP_TIMEOUT_S = 15.0


@dataclass
class NodeCommand:
    """One node process: a label for messages and its full command line."""

    label: str
    argv: list[str]


def _ros_args(namespace: str, use_sim_time: bool) -> list[str]:
    args = ["-p", f"use_sim_time:={str(use_sim_time).lower()}"]
    return [*args, "-r", f"__ns:={namespace}"] if namespace else args


def build_commands(args: argparse.Namespace) -> list[NodeCommand]:
    """The node command lines for parsed ``args`` (see ``parse_args``)."""
    common = _ros_args(args.namespace, args.use_sim_time)
    camera = ["-r", f"image:={args.camera_topic}",
              "-r", f"image/compressed:={args.camera_topic}/compressed",
              "-r", f"camera_info:={args.camera_info_topic}"]
    perception = [sys.executable, "-m", "flowfeat_ros.perception_node", "--ros-args",
                  "--params-file", str(args.config), *common, *camera]
    overrides = perception_overrides({name: getattr(args, name) for name in OVERRIDABLE_PARAMETERS})
    for param in [f"{name}:={value}" for name, value in overrides.items()] + args.param:
        perception += ["-p", param]
    commands = [NodeCommand("perception_node", perception)]
    if args.video:
        commands.insert(0, NodeCommand("video_publisher", [
            sys.executable, "-m", "flowfeat_ros.video_publisher", "--ros-args", *common,
            "-p", f"source:={args.video}", "-p", "loop:=true",
            "-p", f"rate:={float(args.video_rate)}", "-p", f"width:={args.video_width}",
            "-p", f"wait_for_subscribers:={args.video_wait_for_subscribers}",
            "-r", f"camera/image_raw:={args.camera_topic}",
            "-r", f"camera/camera_info:={args.camera_info_topic}"]))
    if args.record:
        commands.append(NodeCommand("recorder_node", [
            sys.executable, "-m", "flowfeat_ros.recorder_node", "--ros-args",
            "--params-file", str(args.recorder_config), *common, *camera]))
    if args.train:
        commands.append(NodeCommand("trainer_node", [
            sys.executable, "-m", "flowfeat_ros.trainer_node", "--ros-args",
            "--params-file", str(args.trainer_config), *common]))
    return commands


class NodeGroup:
    """Runs node processes together and stops them together."""

    def __init__(self, commands: list[NodeCommand]) -> None:
        self.commands = commands
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        """Start every node (children ignore the terminal's SIGINT; we forward it)."""
        for command in self.commands:
            self.procs.append(subprocess.Popen(command.argv, start_new_session=True))

    def failed(self) -> tuple[str, int] | None:
        """(label, exit code) of a node that exited with an error on its own, if any."""
        for command, proc in zip(self.commands, self.procs, strict=True):
            code = proc.poll()
            if code not in (None, 0):
                return command.label, code
        return None

    def stop(self) -> int:
        """SIGINT every running node, wait, kill stragglers; returns the first non-zero code."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        codes = []
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for command, proc in zip(self.commands, self.procs, strict=True):
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                print(f"{command.label} did not stop in {STOP_TIMEOUT_S:.0f} s; killing it",
                      file=sys.stderr)
                proc.kill()
                codes.append(proc.wait())
        return next((code for code in codes if code != 0), 0)


def parser() -> argparse.ArgumentParser:
    """Command-line options (the launch file's arguments, plus --video and --param)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camera-topic", default="/camera/image_raw")
    p.add_argument("--camera-info-topic", default="/camera/camera_info")
    configs = config_dir()
    p.add_argument("--config", type=Path, default=configs / "perception.yaml")
    p.add_argument("--checkpoint", default="", help="override the config's checkpoint")
    p.add_argument("--device", default="", help="override the config's device")
    p.add_argument("--namespace", default="")
    p.add_argument("--use-sim-time", action="store_true")
    p.add_argument("--record", action="store_true", help="also run recorder_node")
    p.add_argument("--recorder-config", type=Path, default=configs / "recorder.yaml")
    p.add_argument("--train", action="store_true", help="also run trainer_node")
    p.add_argument("--trainer-config", type=Path, default=configs / "trainer.yaml")
    p.add_argument("--video", help="play this video / image folder / rosbag2 as the camera")
    p.add_argument("--video-rate", type=float, default=0.0, help="frames/s (0: the video's)")
    p.add_argument("--video-width", type=int, default=0, help="resize the video (0: keep)")
    p.add_argument("--video-wait-for-subscribers", type=int, default=0, metavar="N",
                   help="hold the video's first frame until the camera topic has N subscribers")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra perception parameter override (repeatable)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check ``argv``; a bad value exits with status 2 and one line."""
    p = parser()
    args = p.parse_args(argv)
    for path, node_name in ((args.config, "perception"),
                            *([(args.recorder_config, "recorder")] if args.record else []),
                            *([(args.trainer_config, "trainer")] if args.train else [])):
        try:
            check_parameter_file(path, node_name)
        except ValueError as error:
            p.error(str(error))
    if args.video and not Path(args.video).expanduser().exists():
        p.error(f"video {args.video} does not exist")
    for argument in ("camera_topic", "camera_info_topic"):
        try:
            check_topic_name(argument, getattr(args, argument))
        except ValueError as error:
            p.error(str(error))
    for param in args.param:
        if ":=" not in param:
            p.error(f"--param {param!r} must look like NAME:=VALUE")
    return args


def run(group: NodeGroup, duration: float | None = None) -> int:
    """Run ``group`` until SIGINT/SIGTERM, a node failure or ``duration`` seconds."""
    stopping = []
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    group.start()
    start = time.monotonic()
    try:
        while not stopping and (duration is None or time.monotonic() - start < duration):
            failure = group.failed()
            if failure:
                print(f"{failure[0]} exited with status {failure[1]}", file=sys.stderr)
                group.stop()
                return failure[1]
            time.sleep(0.1)
        return group.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = parse_args(argv)
    use_large_message_profile(config_dir())
    sys.exit(run(NodeGroup(build_commands(args))))


if __name__ == "__main__":
    main()
