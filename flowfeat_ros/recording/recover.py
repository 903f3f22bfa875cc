"""Turn a bag left behind by a crash (no metadata.yaml) into a complete, indexed bag.

After SIGKILL or power loss the current bag has no ``metadata.yaml`` and, for mcap, no summary
section. Every message that reached the disk is copied, in file order, into a fresh bag which then
replaces the damaged one. mcap is read with the ``mcap`` package's non-seeking (streaming) reader,
which stops at the first truncated record; sqlite3 is opened normally so SQLite rolls back the
unfinished transaction from its journal first.

Usage: ``python -m flowfeat_ros.recording.recover BAG_DIR [BAG_DIR ...]``
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

from backports import zstd
from mcap.exceptions import McapError
from mcap.reader import NonSeekingReader

from flowfeat_core.data.ros_types import TYPESTORE
from flowfeat_ros.recording.bag_sequence import BagFormat

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RawMessage = tuple[str, str, int, bytes]  # topic, msgtype, timestamp ns, CDR bytes


class RecoveryError(RuntimeError):
    """The directory is not a recoverable bag."""


#: Everything ``recover_bag`` raises for a bag it cannot complete.
RECOVERY_ERRORS = (RecoveryError, OSError, sqlite3.Error)


def _mcap_messages(path: Path) -> Iterator[RawMessage]:
    """Messages of a possibly truncated mcap file, up to the first damaged record."""
    with path.open("rb") as stream:
        reader = NonSeekingReader(stream)
        try:
            for schema, channel, message in reader.iter_messages(log_time_order=False):
                msgtype = schema.name if schema is not None else ""
                yield channel.topic, msgtype, message.log_time, message.data
        except (McapError, struct.error, EOFError):
            return


def _sqlite_messages(path: Path) -> Iterator[RawMessage]:
    """Committed messages of a sqlite3 bag (opening it rolls back an unfinished transaction)."""
    conn = sqlite3.connect(path)
    try:
        topics = dict(((tid, (name, msgtype)) for tid, name, msgtype in
                       conn.execute("SELECT id, name, type FROM topics")))
        rows = conn.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
        for topic_id, timestamp, data in rows:
            name, msgtype = topics[topic_id]
            blob = bytes(data)
            yield name, msgtype, timestamp, (zstd.decompress(blob) if blob.startswith(ZSTD_MAGIC)
                                             else blob)
    finally:
        conn.close()


def _storage_file(bag_dir: Path) -> tuple[str, Path]:
    for storage, suffix in (("mcap", ".mcap"), ("sqlite3", ".db3")):
        candidate = bag_dir / f"{bag_dir.name}{suffix}"
        if candidate.is_file():
            return storage, candidate
    raise RecoveryError(f"{bag_dir}: no {bag_dir.name}.mcap or {bag_dir.name}.db3 inside")


def recover_bag(bag_dir: Path) -> int:
    """Rewrite the crashed bag ``bag_dir`` in place as a complete bag; returns messages kept."""
    if (bag_dir / "metadata.yaml").exists():
        raise RecoveryError(f"{bag_dir}: has metadata.yaml, it is complete already")
    storage, data_file = _storage_file(bag_dir)
    messages = _mcap_messages(data_file) if storage == "mcap" else _sqlite_messages(data_file)
    staging = bag_dir.with_name(bag_dir.name + ".recovering") / bag_dir.name
    shutil.rmtree(staging.parent, ignore_errors=True)
    staging.parent.mkdir()
    writer = BagFormat(storage).new_writer(staging)
    connections = {}
    count = 0
    for topic, msgtype, timestamp, data in messages:
        if (topic, msgtype) not in connections:
            connections[topic, msgtype] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        writer.write(connections[topic, msgtype], timestamp, data)
        count += 1
    writer.close()
    shutil.rmtree(bag_dir)
    staging.rename(bag_dir)
    staging.parent.rmdir()
    return count


def main(argv: list[str] | None = None) -> None:
    """CLI: recover each given bag directory; exit 1 with a one-line error on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bags", nargs="+", type=Path, help="bag directories without metadata.yaml")
    args = parser.parse_args(argv)
    for bag in args.bags:
        try:
            print(f"{bag}: recovered {recover_bag(bag)} messages")
        except RECOVERY_ERRORS as error:
            print(f"recover: {error}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
