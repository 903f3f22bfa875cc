"""Push what a rosbags writer has buffered to disk, so a crash loses at most one flush interval.

rosbags' writers only make data durable when the bag is closed: the mcap storage keeps the
current chunk (up to 1 MiB) in memory and the sqlite3 storage keeps one open transaction. This
module reaches into those two storage classes (rosbags 0.10/0.11 layout) to close the pending
mcap chunk or commit the sqlite3 transaction, then fsyncs the file.
"""

from __future__ import annotations

import os

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
