"""CRC-32 of every mcap chunk this recorder writes, so damage to a recorded bag can be detected.

rosbags' mcap writer stores 0 in each chunk's ``uncompressed_crc`` field (0 means "not
computed"), so bytes overwritten inside a chunk go unnoticed and become garbage training frames.
``ros2 bag record`` fills the field; this module makes our bags do the same by wrapping the
writer's ``close_chunk`` (rosbags 0.10/0.11 layout, like durability.py): the CRC of the chunk's
uncompressed records is patched into the chunk record right after it is written. mcap readers
(the ``mcap`` package with ``validate_crcs=True``, flowfeat_core's bag reader) check it.
"""

from __future__ import annotations

import zlib

from rosbags.rosbag2 import Writer
from rosbags.rosbag2.storage_mcap import McapWriter

#: Offset of ``uncompressed_crc`` in a Chunk record: opcode (1), record length (8),
#: message_start_time (8), message_end_time (8), uncompressed_size (8).
CRC_OFFSET = 33


def write_chunk_crcs(writer: Writer) -> None:
    """Make an opened mcap ``writer`` store the CRC of every chunk it closes (no-op otherwise)."""
    storage = writer.storage
    if not isinstance(storage, McapWriter):
        return
    close_chunk = storage.close_chunk

    def close_chunk_with_crc() -> None:
        crc = zlib.crc32(storage.chunk.bio.getbuffer())
        start = storage.bio.tell()
        close_chunk()
        end = storage.bio.tell()
        storage.bio.seek(start + CRC_OFFSET)
        storage.bio.write(crc.to_bytes(4, "little"))
        storage.bio.seek(end)

    storage.close_chunk = close_chunk_with_crc
