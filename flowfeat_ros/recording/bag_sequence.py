"""A sequence of rosbag2 bags in one directory, split by size and duration, written with rosbags.

Each split is a complete, independent bag directory named ``<prefix>_<UTC time>_<seq>``, so any
reader can open any one of them, and the oldest can be deleted to honour a disk quota.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import Connection
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from flowfeat_core.data.ros_types import TYPESTORE
from flowfeat_ros.recording.chunk_crc import write_chunk_crcs
from flowfeat_ros.recording.durability import DiskWriteError, flush_to_disk, undo_on_failure
from flowfeat_ros.recording.topics import TopicSpec

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
COMPRESSIONS = ("none", "zstd")


@dataclass(frozen=True)
class BagFormat:
    """Storage plugin ('mcap' or 'sqlite3') and compression ('none' or 'zstd').

    zstd means chunk compression for mcap (transparent to every mcap reader) and per-message
    compression for sqlite3 (recorded in metadata.yaml, as ``ros2 bag record`` does).
    """

    storage: str = "mcap"
    compression: str = "none"

    def __post_init__(self) -> None:
        """Reject unknown storage/compression names with the allowed values."""
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {self.storage!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, "
                             f"got {self.compression!r}")

    def new_writer(self, path: Path) -> Writer:
        """An opened rosbags Writer for a new bag at ``path`` (mcap chunks carry CRCs)."""
        writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[self.storage])
        if self.compression == "zstd":
            mode = CompressionMode.STORAGE if self.storage == "mcap" else CompressionMode.MESSAGE
            writer.set_compression(mode, CompressionFormat.ZSTD)
        writer.open()
        write_chunk_crcs(writer)
        return writer


@dataclass(frozen=True)
class SplitLimits:
    """When to start a new bag: payload bytes and time span (0 disables a limit)."""

    max_bytes: int = 0
    max_duration_ns: int = 0


class BagSequence:
    """Writes serialized messages into the current bag, opening and splitting bags as needed."""

    def __init__(self, output_dir: Path, prefix: str, bag_format: BagFormat,
                 limits: SplitLimits) -> None:
        """Bags go to ``output_dir/<prefix>_...``; nothing is created before the first write."""
        self.output_dir = output_dir
        self.prefix = prefix
        self.bag_format = bag_format
        self.limits = limits
        self.bags_started = 0
        self.total_bytes = 0
        self._writer: Writer | None = None
        self._connections: dict[TopicSpec, Connection] = {}
        self._bag_bytes = 0
        self._bag_start_ns = 0

    @property
    def current_path(self) -> Path | None:
        """Directory of the bag being written, or None between bags."""
        return self._writer.path if self._writer is not None else None

    def _new_bag_path(self) -> Path:
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now % 1 * 1000):03d}"
        return self.output_dir / f"{self.prefix}_{stamp}_{self.bags_started % 10000:04d}"

    def _open(self, timestamp_ns: int) -> Writer:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self._new_bag_path()
        try:
            writer = self.bag_format.new_writer(path)
            flush_to_disk(writer)  # the file header is on disk before anything is guarded
        except (OSError, sqlite3.Error) as error:
            shutil.rmtree(path, ignore_errors=True)
            raise DiskWriteError.from_error(error, f"cannot start bag {path.name}") from error
        self._writer = writer
        self.bags_started += 1
        self._connections = {}
        self._bag_bytes = 0
        self._bag_start_ns = timestamp_ns
        return self._writer

    def _limit_reached(self, size: int, timestamp_ns: int) -> bool:
        over_size = self.limits.max_bytes > 0 and self._bag_bytes + size > self.limits.max_bytes
        over_time = (self.limits.max_duration_ns > 0
                     and timestamp_ns - self._bag_start_ns >= self.limits.max_duration_ns)
        return self._bag_bytes > 0 and (over_size or over_time)

    def write(self, topic: TopicSpec, data: bytes, timestamp_ns: int) -> None:
        """Append one serialized message, splitting first if it would exceed a limit."""
        if self._writer is not None and self._limit_reached(len(data), timestamp_ns):
            self.close()
        writer = self._writer or self._open(timestamp_ns)
        with undo_on_failure(writer):
            connection = self._connections.get(topic)
            if connection is None:
                connection = writer.add_connection(topic.name, topic.msgtype, typestore=TYPESTORE)
                self._connections[topic] = connection
            writer.write(connection, timestamp_ns, data)
        self._bag_bytes += len(data)
        self.total_bytes += len(data)

    def flush(self) -> None:
        """Make everything written so far durable on disk (see durability.flush_to_disk)."""
        if self._writer is not None:
            with undo_on_failure(self._writer):
                flush_to_disk(self._writer)

    def abandon(self) -> None:
        """Drop the current bag without finishing it (its directory was deleted under us)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError, sqlite3.Error):
                writer.close()

    def close(self) -> Path | None:
        """Finish the current bag (index, summary, metadata.yaml); returns its directory. If that
        fails (disk still full) the bag is given up and DiskWriteError raised: it lacks only its
        metadata, and ``recover`` (run by the recorder at start-up) completes it."""
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        try:
            writer.close()
        except (OSError, sqlite3.Error) as error:
            raise DiskWriteError.from_error(error, f"cannot close {writer.path.name}") from error
        return writer.path
