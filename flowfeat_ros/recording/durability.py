"""Push what a rosbags writer has buffered to disk, so a crash loses at most one flush interval,
and undo a file write that failed half-way (disk full), so the bag can still be closed cleanly.

rosbags' writers only make data durable when the bag is closed: the mcap storage keeps the
current chunk (up to 1 MiB) in memory and the sqlite3 storage keeps one open transaction. This
module reaches into those two storage classes (rosbags 0.10/0.11 layout) to close the pending
mcap chunk or commit the sqlite3 transaction, then fsyncs the file.

A failed mcap write leaves a partial record at the end of the file; rosbags resets its pending
chunk only after a successful write, so cutting the file back to where the write started
restores a consistent state in which the chunk is still pending (nothing recorded is lost).
SQLite rolls a failed transaction back by itself.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator

from rosbags.rosbag2 import Writer
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer


def flush_to_disk(writer: Writer) -> None:
    """Write the buffered messages of an open ``writer`` to its file and fsync it."""
    storage = writer.storage
    if isinstance(storage, McapWriter):
        if storage.chunk.msgs:
            storage.close_chunk()
        storage.bio.flush()
        os.fsync(storage.bio.fileno())
    elif isinstance(storage, Sqlite3Writer):
        storage.conn.commit()
    elif storage is not None:
        raise TypeError(f"cannot flush rosbags storage {type(storage).__name__}")


class DiskWriteError(OSError):
    """Writing to the bag failed (typically ENOSPC); the bag was restored to its last consistent
    state and can still be closed once there is room."""

    @classmethod
    def from_error(cls, error: OSError | sqlite3.Error, what: str) -> DiskWriteError:
        """``what`` failed because of ``error`` (its errno kept when it has one)."""
        return cls(getattr(error, "errno", None) or 0, f"{what}: {error}")


@contextlib.contextmanager
def undo_on_failure(writer: Writer) -> Iterator[None]:
    """Run a write or flush of ``writer`` and push it to the file; on an I/O error put the mcap
    file and the writer's chunk state back as they were and raise DiskWriteError.

    Every guarded operation ends flushed, so the file position at the start is what is on disk.
    """
    storage = writer.storage
    mcap = isinstance(storage, McapWriter)
    start, saved = (storage.bio.tell(), (storage.chunk, list(storage.chunks))) if mcap else (0, None)
    try:
        yield
        if mcap:
            storage.bio.flush()
    except (OSError, sqlite3.Error) as error:
        if mcap:
            _cut_back(storage, start)
            storage.chunk, storage.chunks = saved  # the chunk is pending again, its index gone
        raise DiskWriteError.from_error(error, f"writing {writer.path.name} failed") from error


def _cut_back(storage: McapWriter, offset: int) -> None:
    """Drop everything after ``offset`` (buffered or on disk) and write on from there."""
    with contextlib.suppress(OSError):
        storage.bio.close()  # its buffered tail cannot be written; the file is closed anyway
    with storage.path.open("r+b") as stream:
        stream.truncate(offset)  # frees space, needs none
    storage.bio = storage.path.open("r+b")
    storage.bio.seek(offset)
