"""Find rosbag2 bags on disk and stream their messages (mcap and sqlite3, via rosbags): images,
and the camera_info, odometry and /tf a recording holds beside them.

A bag is a directory with metadata.yaml, a bare .mcap / .db3 file, or any of these found by
recursing into a parent folder. An .mcap file that rosbags refuses (no footer or summary, as left
by a recorder killed with SIGKILL) is scanned record by record with the `mcap` stream reader, which
recovers every message in the complete chunks before the truncation point.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import (
    CRCValidationError,
    StreamReader,
    breakup_chunk,
    get_chunk_data_stream,
)
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.serde import SerdeError

from flowfeat_core.data.errors import DataError
from flowfeat_core.data.ros_types import TYPESTORE

LOG = logging.getLogger(__name__)

IMAGE_MSGTYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
BAG_FILE_SUFFIXES = (".mcap", ".db3")
ROSBAGS_ERRORS = (ReaderError, sqlite3.Error, OSError, KeyError, ValueError, AssertionError)


def find_bags(paths: Sequence[str | Path]) -> list[Path]:
    """Expand bag directories, bare .mcap/.db3 files and parent folders into a sorted bag list."""
    bags: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path).expanduser()
        if not path.exists():
            raise DataError(f"bag path {path} does not exist")
        if path.is_file():
            if path.suffix not in BAG_FILE_SUFFIXES:
                raise DataError(f"{path} is not a rosbag2 bag (expected a directory with "
                                f"metadata.yaml, an .mcap or a .db3 file)")
            bags.append(path)
            continue
        found = _bags_under(path)
        if not found:
            what = "is an empty directory" if not any(path.iterdir()) else "contains no bags"
            raise DataError(f"{path} {what}: no metadata.yaml, .mcap or .db3 found")
        bags.extend(found)
    return sorted(dict.fromkeys(bags))


def _bags_under(folder: Path) -> list[Path]:
    """Bag directories and bare bag files under `folder` (files inside bag directories excluded)."""
    if (folder / "metadata.yaml").is_file():
        return [folder]
    bags: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.is_dir():
            bags.extend(_bags_under(child))
        elif child.suffix in BAG_FILE_SUFFIXES:
            bags.append(child)
    return bags


def image_topic_counts(bag: Path) -> dict[str, int]:
    """Message count of every sensor_msgs Image / CompressedImage topic of a bag."""
    return topic_counts(bag, IMAGE_MSGTYPES)


def topic_counts(bag: Path, msgtypes: Sequence[str]) -> dict[str, int]:
    """Message count of every topic of a bag whose type is one of ``msgtypes``."""
    reader = _open_reader(bag)
    if isinstance(reader, Exception):
        return dict(Counter(topic for topic, _, _, _ in _scan_mcap_records(bag, reader, msgtypes)))
    with closing(reader):
        counts: Counter[str] = Counter()
        for connection in reader.connections:
            if connection.msgtype in msgtypes:
                counts[connection.topic] += connection.msgcount
        return dict(counts)


def _open_reader(bag: Path) -> Reader | Exception:
    """An opened rosbags Reader, or the error rosbags raised while opening the bag."""
    try:
        reader = Reader(bag)
        reader.open()
    except ROSBAGS_ERRORS as error:
        return error
    return reader


def select_image_topics(bag: Path, topics: Sequence[str] | None) -> list[str]:
    """The requested topics (all must be image topics of the bag) or the one with most frames."""
    counts = image_topic_counts(bag)
    if not counts:
        raise DataError(f"bag {bag} has no sensor_msgs/Image or CompressedImage topic")
    if not topics:
        return [max(sorted(counts), key=lambda topic: counts[topic])]
    missing = [topic for topic in topics if topic not in counts]
    if missing:
        raise DataError(f"bag {bag} has no image topic {', '.join(missing)} "
                        f"(image topics: {', '.join(sorted(counts))})")
    return list(topics)


def iter_image_messages(bag: Path, topic: str) -> Iterator[tuple[int, Any]]:
    """Yield (log_time_ns, message) for every Image/CompressedImage message on `topic`; mcap chunks
    that fail their CRC are skipped (rosbags would stop at the first one)."""
    return iter_messages(bag, topic, IMAGE_MSGTYPES)


def iter_messages(bag: Path, topic: str, msgtypes: Sequence[str]) -> Iterator[tuple[int, Any]]:
    """Yield (log_time_ns, message) for every message on `topic` whose type is in ``msgtypes``,
    skipping damaged mcap chunks as for images."""
    reader = _open_reader(bag)
    if not isinstance(reader, Exception) and _has_damaged_chunk(bag):
        reader.close()
        reader = DataError(f"{bag} has chunks that fail their CRC check")
    if isinstance(reader, Exception):
        for record_topic, msgtype, log_time, raw in _scan_mcap_records(bag, reader, msgtypes):
            if record_topic == topic:
                yield log_time, _deserialize(raw, msgtype, bag, topic)
        return
    with closing(reader):
        connections = [c for c in reader.connections
                       if c.topic == topic and c.msgtype in msgtypes]
        messages = reader.messages(connections=connections)
        while True:
            try:
                connection, log_time, raw = next(messages)
            except StopIteration:
                return
            except ROSBAGS_ERRORS as error:
                raise DataError(f"corrupt bag {bag}: reading {topic} failed: {error}") from None
            yield log_time, _deserialize(raw, connection.msgtype, bag, topic)


def _mcap_files(bag: Path) -> list[Path]:
    return sorted(bag.glob("*.mcap")) if bag.is_dir() else [bag]


def _has_damaged_chunk(bag: Path) -> bool:
    """Whether an mcap chunk of ``bag`` fails its CRC. Chunks without one (0, as rosbags writes;
    this project's recorder fills it) cannot be checked; sqlite3 bags have none."""
    for file in _mcap_files(bag):
        if file.suffix != ".mcap":
            continue
        with file.open("rb") as stream:
            try:
                for record in StreamReader(stream, emit_chunks=True).records:
                    if isinstance(record, Chunk) and not _chunk_is_intact(record):
                        return True
            except (McapError, ValueError, EOFError, struct.error):
                continue  # truncation: rosbags or the scan reports it
    return False


def _chunk_is_intact(chunk: Chunk) -> bool:
    if chunk.uncompressed_crc == 0:
        return True
    try:
        get_chunk_data_stream(chunk, validate_crc=True)
    except CRCValidationError:
        return False
    except Exception:  # damaged data makes each decompressor fail in its own way
        return False
    return True


def _deserialize(raw: bytes | memoryview, msgtype: str, bag: Path, topic: str) -> Any:
    """CDR-deserialize one message, naming bag and topic if it is corrupt."""
    try:
        return TYPESTORE.deserialize_cdr(raw, msgtype)
    except (SerdeError, ValueError, IndexError) as error:
        raise DataError(f"bag {bag} topic {topic}: corrupt {msgtype} message ({error})") from None


#: Damaged files already reported: a bag is scanned once to count topics and once to read them.
_REPORTED: set[tuple[str, int, int, str]] = set()


def _warn_once(file: Path, message: str) -> None:
    """Log ``message`` the first time it is said of this version (size, mtime) of ``file``."""
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, message)
    if key not in _REPORTED:
        _REPORTED.add(key)
        LOG.warning("%s", message)


def _summary_channels(file: Path) -> dict[int, tuple[str, str]]:
    """channel id -> (topic, msgtype) from the mcap summary section; empty when there is none."""
    try:
        with file.open("rb") as stream:
            summary = make_reader(stream).get_summary()
    except Exception:  # truncated or damaged: the stream scan finds what it can
        return {}
    if summary is None:
        return {}
    return {channel_id: (channel.topic, getattr(summary.schemas.get(channel.schema_id), "name", ""))
            for channel_id, channel in summary.channels.items()}


def _scan_mcap_records(
    bag: Path, rosbags_error: Exception, msgtypes: Sequence[str]
) -> Iterator[tuple[str, str, int, bytes]]:
    """Recover (topic, msgtype, log_time_ns, cdr) records of ``msgtypes`` from mcap files rosbags
    rejected (truncated, or with damaged chunks, which are skipped whole)."""
    files = _mcap_files(bag)
    if not files or any(file.suffix != ".mcap" for file in files):
        raise DataError(f"corrupt or unreadable bag {bag}: {rosbags_error}")
    recovered = 0
    for file in files:
        schemas: dict[int, str] = {}
        channels = _summary_channels(file)  # a damaged first chunk may hold the only copy
        damaged = 0
        try:
            with file.open("rb") as stream:
                for record in StreamReader(stream, emit_chunks=True).records:
                    if isinstance(record, Chunk) and not _chunk_is_intact(record):
                        damaged += 1
                        continue
                    for item in breakup_chunk(record) if isinstance(record, Chunk) else [record]:
                        if isinstance(item, Schema):
                            schemas[item.id] = item.name
                        elif isinstance(item, Channel):
                            channels[item.id] = (item.topic, schemas.get(item.schema_id, ""))
                        elif isinstance(item, Message):
                            topic, msgtype = channels.get(item.channel_id, ("", ""))
                            if msgtype in msgtypes:
                                recovered += 1
                                yield topic, msgtype, item.log_time, item.data
        except (McapError, ValueError, EOFError, struct.error) as error:
            _warn_once(file, f"bag {bag}: {file.name} is truncated or corrupt "
                             f"({str(error) or type(error).__name__}); using the {recovered} "
                             "messages read before that point")
        if damaged:
            _warn_once(file, f"bag {bag}: {damaged} chunk(s) of {file.name} fail their CRC check "
                             "(damaged on disk); their messages are skipped")
    if not recovered:
        raise DataError(f"corrupt or truncated bag {bag}: {rosbags_error}; no readable "
                        f"{' or '.join(type_.rsplit('/', 1)[-1] for type_ in msgtypes)} messages")
