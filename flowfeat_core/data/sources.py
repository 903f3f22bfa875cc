"""One entry point that turns bags, videos and image folders into cleaned frame sequences."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowfeat_core.data.bag_reader import find_bags, iter_image_messages, select_image_topics
from flowfeat_core.data.errors import DataError
from flowfeat_core.data.frame_cache import cache_stream, default_cache_dir
from flowfeat_core.data.image_codec import ImageDecodeError, decode_image_message
from flowfeat_core.data.image_folder import iter_folder_frames, list_image_files
from flowfeat_core.data.sequences import FrameFilter, FrameSequence, split_stream
from flowfeat_core.data.video_reader import find_videos, iter_video_frames

LOG = logging.getLogger(__name__)


def build_frame_sequences(
    bags: Sequence[str | Path] = (),
    videos: Sequence[str | Path] = (),
    images: Sequence[str | Path] = (),
    topic: str | Sequence[str] | None = None,
    max_side: int = 320,
    frame_filter: FrameFilter | None = None,
    cache_dir: Path | None = None,
) -> list[FrameSequence]:
    """Read every source once into the frame cache and return its usable sequences.

    bags: bag directories, .mcap/.db3 files or folders holding bags (searched recursively).
    videos: video files or glob patterns, each optionally ``@START:STOP``.
    images: folders of image files (one sequence each).
    topic: image topic(s) to read from every bag; None picks each bag's topic with most frames.
    max_side: frames are downscaled so their long side is at most this many pixels.
    cache_dir: where decoded frames are stored (default: `default_cache_dir()`).
    Raises DataError if an input is unusable or no sequence with at least 2 frames results.
    """
    if not (bags or videos or images):
        raise DataError("no training data given: pass bags, videos or image folders")
    frame_filter = frame_filter or FrameFilter()
    cache_dir = cache_dir or default_cache_dir()
    topics = [topic] if isinstance(topic, str) else topic
    streams: list[tuple[str, dict[str, Any], Iterable[tuple[int, np.ndarray]]]] = []
    for bag in find_bags(bags):
        for bag_topic in select_image_topics(bag, topics):
            key = {"bag": _file_stats(bag), "topic": bag_topic}
            streams.append((f"{bag.resolve()}:{bag_topic}", key, _bag_frames(bag, bag_topic)))
    for video in find_videos(videos):
        key = {"video": _file_stats(video.path), "frames": [video.start, video.stop]}
        streams.append((video.source_id, key, iter_video_frames(video)))
    for folder in images:
        files = list_image_files(Path(folder).expanduser())
        key = {"images": [_file_stats(file) for file in files]}
        streams.append((str(Path(folder).resolve()), key, iter_folder_frames(files)))

    sequences: list[FrameSequence] = []
    for source_id, key, frames in streams:
        stream = cache_stream(key, frames, cache_dir, max_side)
        found = split_stream(source_id, stream, frame_filter)
        LOG.info("%s: %d frames, %d kept in %d sequences", source_id, len(stream.stamps_ns),
                 sum(len(sequence) for sequence in found), len(found))
        if stream.skipped_other_size:
            LOG.warning("%s: skipped %d frames whose size differs from the first frame",
                        source_id, stream.skipped_other_size)
        if not found:
            LOG.warning("%s: fewer than %d usable frames, not used", source_id,
                        frame_filter.min_frames)
        sequences.extend(found)
    if not sequences:
        names = ", ".join(source_id for source_id, _, _ in streams)
        raise DataError(f"fewer than {frame_filter.min_frames} usable frames in any sequence "
                        f"of {names}")
    return sequences


def _bag_frames(bag: Path, topic: str) -> Iterator[tuple[int, np.ndarray]]:
    """(stamp_ns, rgb) of a bag topic; the header stamp, or the log time where the stamp is 0."""
    for number, (log_time, message) in enumerate(iter_image_messages(bag, topic)):
        stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
        try:
            rgb = decode_image_message(message)
        except ImageDecodeError as error:
            raise DataError(f"bag {bag} topic {topic} message {number}: {error}") from None
        yield (stamp or log_time), rgb


def _file_stats(path: Path) -> list[tuple[str, int, int]]:
    """(resolved path, size, mtime_ns) of a file or of every file in a directory tree."""
    files = sorted(file for file in path.rglob("*") if file.is_file()) if path.is_dir() else [path]
    return [(str(file.resolve()), file.stat().st_size, file.stat().st_mtime_ns) for file in files]
