"""``recorder`` node: writes camera topics to rosbag2 (mcap or sqlite3) for later FlowFeat training.

Subscriptions are raw (serialized CDR bytes go straight into the bag). Frames pass a rate cap and a
thumbnail motion gate; bags are split by size/duration, flushed every ``flush_interval_s``, the
oldest bags are deleted beyond ``quota_mb`` and recording pauses below ``min_free_mb`` free space.
Run: ``recorder_node --ros-args --params-file config/recorder.yaml``. See docs/recording.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import SetBool, Trigger

from flowfeat_ros.diagnostics import WALL_CLOCK, publish_status
from flowfeat_ros.parameter_declarations import declare_settings
from flowfeat_ros.qos import qos_profile
from flowfeat_ros.recording.bag_sequence import BagFormat, BagSequence, SplitLimits
from flowfeat_ros.recording.disk_guard import (
    SpaceReserve,
    enforce_quota,
    free_bytes,
    recorder_bags,
)
from flowfeat_ros.recording.durability import DiskWriteError
from flowfeat_ros.recording.motion_gate import (
    MotionGate,
    RateCap,
    ThumbnailError,
    thumbnail_from_cdr,
)
from flowfeat_ros.recording.recover import RECOVERY_ERRORS, recover_bag
from flowfeat_ros.recording.settings import RecorderSettings
from flowfeat_ros.recording.topics import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    ODOMETRY,
    TopicSpec,
    classify_topic,
)

MB = 1024 * 1024
#: Room kept for closing a bag when the disk fills: the last mcap chunk (1 MiB, written
#: uncompressed at worst), its index, the summary and metadata.yaml.
CLOSE_RESERVE_BYTES = 4 * MB
RESERVE_NAME = ".flowfeat_close_reserve"
ROS_TYPES = {CAMERA_INFO: CameraInfo, COMPRESSED_IMAGE: CompressedImage, ODOMETRY: Odometry}
WARN_PERIOD_S = 10.0
#: A recorded topic silent this long (no publisher matched, or nothing arriving) turns
#: /diagnostics to WARN: a wrong topic name must not look like a healthy recording.
SILENT_WARN_S = 5.0
#: How long a fault the recorder worked around (a deleted bag, a recreated output_dir) keeps
#: /diagnostics at WARN, so a monitor polling every few seconds sees it.
EVENT_VISIBLE_S = 30.0


class RecorderNode(Node):
    """Records raw camera messages into a sequence of rosbag2 bags; see module docstring."""

    def __init__(self) -> None:
        """Declare and validate parameters, subscribe, start timers and services."""
        super().__init__("recorder")
        p = declare_settings(self, RecorderSettings)
        self.specs = self._topic_specs(p.topics)
        if 0 < p.quota_mb < p.max_bag_size_mb:
            raise ValueError(f"quota_mb ({p.quota_mb}) must be >= max_bag_size_mb "
                             f"({p.max_bag_size_mb}) or 0")
        self.output_dir = Path(p.output_dir).expanduser()
        self.prefix = str(p.bag_prefix)
        _require_writable_directory(self.output_dir)
        self._recover_unfinished_bags()
        self.reserve = SpaceReserve(self.output_dir / RESERVE_NAME, CLOSE_RESERVE_BYTES)
        self.disk_error = ""
        self.bags = BagSequence(
            self.output_dir, self.prefix, BagFormat(p.storage, p.compression),
            SplitLimits(int(p.max_bag_size_mb * MB), int(p.max_bag_duration_s * 1e9)))
        self.quota_bytes = int(p.quota_mb * MB)
        self.min_free_bytes = int(p.min_free_mb * MB)
        self.recording = bool(p.start_recording)
        self.paused_reason = ""
        self.counters = {"kept": 0, "skipped_rate": 0, "skipped_motion": 0, "skipped_paused": 0,
                         "bags_deleted": 0}
        self._last_bag: Path | None = None
        self._started = time.monotonic()
        self._last_received: dict[str, float] = {}
        self._events: list[tuple[float, str]] = []

        qos = qos_profile(p.qos_reliability, p.qos_depth)
        self.subscriptions_by_topic: dict[str, Subscription] = {}
        for spec in self.specs:
            self._subscribe(spec, qos, RateCap(p.max_rate_hz if spec.rate_capped else 0.0),
                            MotionGate(p.motion_threshold) if spec.is_image else None)
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetBool, "~/set_recording", self._on_set_recording)
        self.create_service(Trigger, "~/split", self._on_split)
        self.create_timer(p.flush_interval_s, self._housekeeping, clock=WALL_CLOCK)
        self.create_timer(1.0, self._publish_diagnostics, clock=WALL_CLOCK)
        self._check_disk()
        self.get_logger().info(
            f"recording {[s.name for s in self.specs]} to {self.output_dir} "
            f"({p.storage}, compression {p.compression}); recording={self.recording}")

    def _topic_specs(self, names: list[str]) -> list[TopicSpec]:
        """Topics as recorded: the name after namespace and remapping (``image`` becomes the
        launch's camera_topic), the type from the name as written (a remapped camera_info
        topic stays CameraInfo whatever it is called)."""
        if not names or names == [""]:
            raise ValueError("topics must list at least one topic")
        specs = []
        for name in names:
            msgtype = classify_topic(name).msgtype
            try:
                resolved = self.resolve_topic_name(name)
            except RuntimeError as error:  # rclpy's RCLError: an invalid name
                raise ValueError(f"invalid topic name {name!r}: {error}") from None
            specs.append(TopicSpec(resolved, msgtype))
        if len({s.name for s in specs}) != len(specs):
            raise ValueError(f"topics contains duplicates: {names}")
        return specs

    def _subscribe(self, spec: TopicSpec, qos: QoSProfile, cap: RateCap,
                   gate: MotionGate | None) -> None:
        def callback(data: bytes) -> None:
            self._last_received[spec.name] = time.monotonic()
            self._on_message(spec, cap, gate, data)

        self.subscriptions_by_topic[spec.name] = self.create_subscription(
            ROS_TYPES.get(spec.msgtype, Image), spec.name, callback, qos, raw=True)

    def _warn_event(self, message: str) -> None:
        """Log a fault the recorder worked around and keep it on /diagnostics for a while."""
        self.get_logger().warning(message)
        self._events.append((time.monotonic(), message))

    def _passes_motion_gate(self, spec: TopicSpec, gate: MotionGate, data: bytes) -> bool:
        try:
            return gate.accept(thumbnail_from_cdr(spec.msgtype, data))
        except ThumbnailError as error:
            self.get_logger().warning(f"{spec.name}: {error}; recording the frame ungated",
                                      throttle_duration_sec=WARN_PERIOD_S)
            return True

    def _on_message(self, spec: TopicSpec, cap: RateCap, gate: MotionGate | None,
                    data: bytes) -> None:
        if not self.recording or self.paused_reason:
            self.counters["skipped_paused"] += 1
            return
        now_ns = self.get_clock().now().nanoseconds
        if not cap.due(now_ns):
            self.counters["skipped_rate"] += 1
            return
        if gate is not None and gate.threshold > 0 and not self._passes_motion_gate(
                spec, gate, data):
            self.counters["skipped_motion"] += 1
            return
        if not self._output_usable():
            self.counters["skipped_paused"] += 1
            return
        if free_bytes(self.output_dir) - len(data) < self.min_free_bytes:
            self._check_disk()  # pauses before the write could cross min_free_mb
            if self.paused_reason:
                self.counters["skipped_paused"] += 1
                return
        cap.mark_kept(now_ns)
        try:
            self.bags.write(spec, data, now_ns)
        except DiskWriteError as error:
            self._on_disk_error(error)
            return
        self.counters["kept"] += 1
        if self.bags.current_path != self._last_bag:
            self._last_bag = self.bags.current_path
            self._enforce_quota()

    def _enforce_quota(self) -> None:
        if self.quota_bytes <= 0:
            return
        deleted = enforce_quota(self.output_dir, self.prefix, self.quota_bytes,
                                self.bags.current_path)
        self.counters["bags_deleted"] += len(deleted)
        for bag in deleted:
            self.get_logger().info(f"quota {self.quota_bytes / MB:.1f} MB: deleted {bag.name}")

    def _recover_unfinished_bags(self) -> None:
        """Complete bags a crash or a full disk left without metadata.yaml (see recover.py)."""
        for bag in recorder_bags(self.output_dir, self.prefix):
            if (bag / "metadata.yaml").exists():
                continue
            try:
                count = recover_bag(bag)
            except RECOVERY_ERRORS as error:
                self.get_logger().error(f"cannot recover unfinished bag {bag.name}: {error}")
            else:
                self.get_logger().warning(f"recovered unfinished bag {bag.name}: {count} messages")

    def _check_output_present(self) -> None:
        """Recreate a deleted output_dir and give up a bag deleted under the writer: writing on
        would go to a file nobody can open again. The next message starts a new bag."""
        if not self.output_dir.is_dir():
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DiskWriteError.from_error(error, f"cannot recreate {self.output_dir}") from error
            self._warn_event(f"output_dir {self.output_dir} was deleted while recording; "
                             "recreated it")
        self._drop_deleted_bag("what it held is lost; the next frame starts a new bag")

    def _drop_deleted_bag(self, consequence: str) -> bool:
        """Give up the current bag if its directory was deleted; True if it was."""
        current = self.bags.current_path
        if current is None or current.is_dir():
            return False
        self.bags.abandon()
        self._warn_event(f"bag {current.name} was deleted while recording ({consequence})")
        return True

    def _output_usable(self) -> bool:
        """:meth:`_check_output_present`; an output_dir that cannot be recreated pauses
        recording with ERROR (housekeeping retries) instead of raising in a callback."""
        try:
            self._check_output_present()
        except DiskWriteError as error:
            self.paused_reason = self.disk_error = f"output_dir unusable, recording paused: {error}"
            self.get_logger().error(self.paused_reason, throttle_duration_sec=WARN_PERIOD_S)
            return False
        return True

    def _check_disk(self) -> None:
        if not self._output_usable():
            return
        free = free_bytes(self.output_dir)
        has_room = free >= self.min_free_bytes and self.reserve.hold()
        if not has_room:
            if not self.paused_reason:
                self.reserve.release()  # the room the close needs: another writer took the rest
                self._close_bag()
            self.paused_reason = self.disk_error or (
                f"low disk space: {free / MB:.0f} MB free < min_free_mb "
                f"{self.min_free_bytes / MB:.0f} (or no room for the "
                f"{CLOSE_RESERVE_BYTES // MB} MB close reserve)")
            self.get_logger().warning(f"recording paused, {self.paused_reason}",
                                      throttle_duration_sec=WARN_PERIOD_S)
        elif self.paused_reason:
            if self.bags.current_path is None:
                self._recover_unfinished_bags()  # a close that failed even so: finish it now
            self.get_logger().info("free space recovered, recording resumed")
            self.paused_reason = self.disk_error = ""

    def _on_disk_error(self, error: DiskWriteError) -> None:
        """A write failed (disk full): free the reserve, close the bag, pause until there is room."""
        self.reserve.release()
        self.disk_error = f"disk full or failing, recording paused: {error}"
        self.paused_reason = self.disk_error
        self.get_logger().error(f"{error}; closing the bag with the reserved space")
        self._close_bag()

    def _housekeeping(self) -> None:
        self._check_disk()
        try:
            self.bags.flush()
        except DiskWriteError as error:
            self._on_disk_error(error)
        self._enforce_quota()

    def _close_bag(self) -> str:
        if self._drop_deleted_bag("nothing left to close"):
            return "the bag was deleted"
        try:
            closed = self.bags.close()
        except DiskWriteError as error:
            self.disk_error = f"bag left unfinished, completed once there is room: {error}"
            self.get_logger().error(f"{error}; the bag is completed once there is room (recover)")
            return str(error)
        if closed is None:
            return "no bag open"
        self.get_logger().info(f"closed {closed}")
        return f"closed {closed}"

    def _on_set_recording(self, request: SetBool.Request,
                          response: SetBool.Response) -> SetBool.Response:
        self.recording = bool(request.data)
        response.message = "recording" if self.recording else f"stopped; {self._close_bag()}"
        response.success = True
        return response

    def _on_split(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.message = self._close_bag()
        response.success = True
        return response

    def _warnings(self) -> list[str]:
        """Recent worked-around faults, and topics silent for SILENT_WARN_S while recording."""
        now = time.monotonic()
        self._events = [(t, m) for t, m in self._events if now - t < EVENT_VISIBLE_S]
        found = [m for _, m in self._events]
        if self.recording and not self.paused_reason:
            for name, subscription in self.subscriptions_by_topic.items():
                silent_s = now - self._last_received.get(name, self._started)
                if silent_s < SILENT_WARN_S:
                    continue
                publishers = subscription.get_publisher_count()
                found.append(f"no publisher matched on {name}" if publishers == 0 else
                             f"nothing received on {name} for {silent_s:.0f} s "
                             f"({publishers} publishers)")
        return found

    def _publish_diagnostics(self) -> None:
        warnings = self._warnings()
        level = (DiagnosticStatus.ERROR if self.disk_error else
                 DiagnosticStatus.WARN if self.paused_reason or warnings else DiagnosticStatus.OK)
        message = self.paused_reason or "; ".join(warnings) or (
            "recording" if self.recording else "stopped")
        values = {"bytes_written": self.bags.total_bytes, "bags_started": self.bags.bags_started,
                  "current_bag": self.bags.current_path or "", "recording": self.recording,
                  "paused_reason": self.paused_reason, **self.counters,
                  # matched on this side: a publisher whose QoS is incompatible never counts
                  **{f"publishers {name}": sub.get_publisher_count()
                     for name, sub in self.subscriptions_by_topic.items()}}
        publish_status(self, self.diagnostics, "recorder", level, message, values)

    def finish(self) -> None:
        """Close the current bag so it is complete (called on shutdown)."""
        self._close_bag()
        self.reserve.release()



def _require_writable_directory(path: Path) -> None:
    """Create ``path`` if needed and check a file can be made in it: a bad output_dir is a bad
    parameter (one line, exit 2), not a traceback at the first frame."""
    probe = path / f".flowfeat_write_test_{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ValueError(f"output_dir {path} is not a writable directory: "
                         f"{error.strerror or error}") from None
