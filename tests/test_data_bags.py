"""Real rosbag2 bags (mcap, sqlite3, CompressedImage) written to disk and read back as sequences."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
from bag_writing import (
    TYPESTORE,
    Image,
    make_header,
    make_image_message,
    read_video_frames,
    write_image_bag,
)
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.rosbag2 import StoragePlugin, Writer

from flowfeat_core.data.errors import DataError
from flowfeat_core.data.image_codec import decode_image_message
from flowfeat_core.data.sequences import FrameFilter
from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_ros.recording.bag_sequence import BagFormat, BagSequence, SplitLimits
from flowfeat_ros.recording.topics import classify_topic

KEEP_ALL = FrameFilter(static_threshold=0.0)
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000


@pytest.fixture(scope="module")
def walk() -> list[np.ndarray]:
    """30 frames of opencv-doc vtest.avi (pedestrians), 160x120."""
    return read_video_frames("vtest.avi", 30, 160)


@pytest.fixture(scope="module")
def tree() -> list[np.ndarray]:
    """8 frames of opencv-doc tree.avi, 128x96."""
    return read_video_frames("tree.avi", 8, 128)


def read(tmp_path: Path, bags: list[Path], **options: object) -> list:
    return build_frame_sequences(bags=bags, cache_dir=tmp_path / "cache", **options)


def frames_of(sequence) -> list[np.ndarray]:
    return [sequence.frame(index) for index in range(len(sequence))]


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize(("storage", "encoding"), [("mcap", "rgb8"), ("sqlite3", "bgr8")])
def test_raw_image_bag_reads_back_exactly(tmp_path: Path, walk: list, storage: str,
                                          encoding: str) -> None:
    bag = write_image_bag(tmp_path / "bag", walk, storage=storage, encoding=encoding)
    (sequence,) = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    assert sequence.source_id == f"{bag.resolve()}:/camera/image_raw"
    assert all(np.array_equal(got, want) for got, want in zip(frames_of(sequence), walk,
                                                              strict=True))
    assert np.array_equal(sequence.stamps_ns, START_NS + PERIOD_NS * np.arange(30))


def test_compressed_bag_and_max_side(tmp_path: Path, walk: list) -> None:
    bag = write_image_bag(tmp_path / "bag", walk, compressed=True, encoding="jpeg")
    (sequence,) = read(tmp_path, [bag], frame_filter=KEEP_ALL, max_side=80)
    assert len(sequence) == 30 and sequence.frame(0).shape == (60, 80, 3)
    (full,) = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    # Measured: quality-90 jpeg of these 160x120 frames decodes within ~2 grey levels.
    assert max(mean_error(got, want) for got, want in zip(frames_of(full), walk, strict=True)) < 4


def test_independent_mcap_reader_decodes_written_bag(tmp_path: Path, walk: list) -> None:
    """The bag opens with the `mcap` reader + mcap_ros2 decoder: real format compliance."""
    bag = write_image_bag(tmp_path / "bag", walk[:5], encoding="bgr8")
    with (bag / "bag.mcap").open("rb") as stream:
        decoded = [decode_image_message(message) for _, _, _, message in
                   make_reader(stream, decoder_factories=[DecoderFactory()])
                   .iter_decoded_messages(topics=["/camera/image_raw"])]
    assert len(decoded) == 5
    assert all(np.array_equal(got, want) for got, want in zip(decoded, walk[:5], strict=True))


def test_frames_are_ordered_by_header_stamp(tmp_path: Path, walk: list) -> None:
    order = np.random.default_rng(3).permutation(len(walk))
    bag = write_image_bag(tmp_path / "bag", [walk[i] for i in order],
                          stamps_ns=[START_NS + PERIOD_NS * int(i) for i in order],
                          log_times_ns=[START_NS + PERIOD_NS * i for i in range(len(walk))])
    (sequence,) = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    assert all(np.array_equal(got, want) for got, want in zip(frames_of(sequence), walk,
                                                              strict=True))
    assert np.array_equal(sequence.rows, np.argsort(order))


def test_zero_stamps_fall_back_to_log_time(tmp_path: Path, walk: list) -> None:
    bag = write_image_bag(tmp_path / "bag", walk, storage="sqlite3", stamps_ns=[0] * 30,
                          log_times_ns=[START_NS + PERIOD_NS * i for i in range(30)])
    (sequence,) = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    assert len(sequence) == 30
    assert np.array_equal(sequence.stamps_ns, START_NS + PERIOD_NS * np.arange(30))


def test_topic_auto_pick_explicit_topic_and_topic_list(tmp_path: Path, walk: list,
                                                       tree: list) -> None:
    bag = write_image_bag(tmp_path / "bag", walk[:12], extra_topics={"/small": tree})
    (picked,) = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    assert picked.source_id.endswith(":/camera/image_raw") and len(picked) == 12
    (small,) = read(tmp_path, [bag], frame_filter=KEEP_ALL, topic="/small")
    assert len(small) == 8 and np.array_equal(small.frame(3), tree[3])
    both = read(tmp_path, [bag], frame_filter=KEEP_ALL, topic=["/camera/image_raw", "/small"])
    assert sorted(len(sequence) for sequence in both) == [8, 12]


def test_parent_folder_bare_files_and_several_bags_combine(tmp_path: Path, walk: list,
                                                           tree: list) -> None:
    write_image_bag(tmp_path / "bags" / "a", walk[:10])
    write_image_bag(tmp_path / "bags" / "deeper" / "b", tree, storage="sqlite3")
    bare = write_image_bag(tmp_path / "bare", walk[10:20]) / "bare.mcap"
    sequences = read(tmp_path, [tmp_path / "bags", bare], frame_filter=KEEP_ALL)
    assert [Path(sequence.source_id.split(":")[0]).name for sequence in sequences] == \
        ["a", "b", "bare.mcap"]
    assert [len(sequence) for sequence in sequences] == [10, 8, 10]


def test_static_stretch_is_skipped(tmp_path: Path, walk: list) -> None:
    """A parked robot: frame 10 repeats 10 times, exactly and then with sensor noise."""
    noise = np.random.default_rng(0)
    parked = [walk[10]] * 5 + [
        np.clip(np.rint(walk[10] + noise.normal(0, 2, walk[10].shape)), 0, 255).astype(np.uint8)
        for _ in range(5)]
    frames = walk[:10] + parked + walk[11:20]
    bag = write_image_bag(tmp_path / "bag", frames)
    (sequence,) = read(tmp_path, [bag])
    parked_rows = [row for row in sequence.rows if 10 <= row < 20]
    assert len(parked_rows) <= 1
    (unfiltered,) = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    assert len(unfiltered) == 25  # the 5 exact repeats always go, the noisy ones only by threshold
    assert len(sequence) >= 10


def test_time_gaps_split_sequences(tmp_path: Path, walk: list) -> None:
    stamps = [START_NS + PERIOD_NS * i for i in range(12)]
    stamps += [stamps[-1] + 3_000_000_000 + PERIOD_NS * i for i in range(12)]
    bag = write_image_bag(tmp_path / "bag", walk[:24], stamps_ns=stamps)
    sequences = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    assert [list(sequence.rows[[0, -1]]) for sequence in sequences] == [[0, 11], [12, 23]]
    (joined,) = read(tmp_path, [bag], frame_filter=FrameFilter(static_threshold=0.0,
                                                                max_gap_s=5.0))
    assert len(joined) == 24


def test_truncated_mcap_recovers_complete_chunks(tmp_path: Path, walk: list,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A recorder killed with SIGKILL leaves an mcap without summary/footer and no metadata.yaml.

    rosbags rejects such a file ('File end magic is invalid.'); the reader then scans records and
    keeps the messages of every complete 1 MiB chunk (18 rgb8 frames of 57.6 kB each here).
    """
    bag = write_image_bag(tmp_path / "killed", walk + walk[:10])
    (bag / "metadata.yaml").unlink()
    data = (bag / "killed.mcap").read_bytes()
    (bag / "killed.mcap").write_bytes(data[: len(data) * 3 // 4])
    with caplog.at_level(logging.WARNING):
        (sequence,) = read(tmp_path, [tmp_path / "killed"], frame_filter=KEEP_ALL)
    assert 18 <= len(sequence) < 40
    assert all(np.array_equal(got, want) for got, want in zip(frames_of(sequence), walk[: len(sequence)],
                                                              strict=True))
    assert caplog.text.count("truncated or corrupt") == 1, "counted and read: reported once"


def write_bag_with(tmp_path: Path, name: str, topic: str, msgtype: str, message: object) -> Path:
    """A one-topic mcap bag holding `message` twice (0.1 s apart)."""
    with Writer(tmp_path / name, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        for index in range(2):
            writer.write(connection, START_NS + index * PERIOD_NS,
                         TYPESTORE.serialize_cdr(message, msgtype))
    return tmp_path / name


def test_bad_bags_raise_one_line_data_errors(tmp_path: Path, walk: list) -> None:
    string_type = TYPESTORE.types["std_msgs/msg/String"]
    no_images = write_bag_with(tmp_path, "chat", "/chatter", "std_msgs/msg/String",
                               string_type("hello"))
    depth = Image(make_header(START_NS), 4, 4, "32FC1", 0, 16, np.zeros(64, np.uint8))
    unsupported = write_bag_with(tmp_path, "depth", "/depth", "sensor_msgs/msg/Image", depth)
    one_frame = write_image_bag(tmp_path / "one", walk[:1])
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no bags here")
    (tmp_path / "garbage.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 40)
    (tmp_path / "garbage.db3").write_bytes(b"definitely not sqlite" * 100)
    header_only = tmp_path / "header_only.mcap"
    header_only.write_bytes((write_image_bag(tmp_path / "h", walk[:2]) / "h.mcap")
                            .read_bytes()[:200])
    cases = {
        tmp_path / "missing": "does not exist",
        tmp_path / "empty": "is an empty directory",
        tmp_path / "notes": "contains no bags",
        tmp_path / "notes" / "readme.txt": "is not a rosbag2 bag",
        no_images: "has no sensor_msgs/Image or CompressedImage topic",
        unsupported: "message 0: image 4x4 32FC1: unsupported encoding",
        one_frame: "fewer than 2 usable frames",
        tmp_path / "garbage.mcap": "corrupt or truncated bag",
        tmp_path / "garbage.db3": "corrupt or unreadable bag",
        header_only: "no readable Image or CompressedImage messages",
    }
    for bag, problem in cases.items():
        with pytest.raises(DataError, match=problem) as caught:
            read(tmp_path, [bag])
        assert "\n" not in str(caught.value), str(caught.value)
    with pytest.raises(DataError, match="has no image topic /nope"):
        read(tmp_path, [one_frame], topic="/nope")
    with pytest.raises(DataError, match="no training data given"):
        build_frame_sequences(cache_dir=tmp_path / "cache")


def test_cache_is_reused_and_invalidated_by_changes(tmp_path: Path, walk: list) -> None:
    bag = write_image_bag(tmp_path / "bag", walk[:6])
    first = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    cache_files = sorted((tmp_path / "cache").iterdir())
    assert [path.suffix for path in cache_files] == [".frames", ".npz"]
    again = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    assert sorted((tmp_path / "cache").iterdir()) == cache_files
    assert np.array_equal(first[0].frame(5), again[0].frame(5))
    (bag / "metadata.yaml").touch()
    read(tmp_path, [bag], frame_filter=KEEP_ALL)
    assert len(list((tmp_path / "cache").iterdir())) == 4


def test_bytes_overwritten_in_a_recorded_chunk_fail_its_crc(tmp_path: Path, walk: list,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """4 KiB of random bytes written over a recorded bag's payload used to become training frames.

    The recorder's bags carry chunk CRCs (rosbags writes 0, meaning "none"); the reader skips the
    messages of a chunk whose CRC fails, and says so once.
    """
    bags = BagSequence(tmp_path / "rec", "rec", BagFormat(), SplitLimits())
    spec = classify_topic("/camera/image_raw")
    frames = walk + walk[:10]  # 40 frames of 57.6 kB: chunks of about 18
    for index, rgb in enumerate(frames):
        stamp = 1_700_000_000_000_000_000 + index * 100_000_000
        message = make_image_message(rgb, "rgb8", stamp)
        bags.write(spec, TYPESTORE.serialize_cdr(message, spec.msgtype), stamp)
    bag = bags.close()
    (mcap_file,) = bag.glob("*.mcap")
    data = bytearray(mcap_file.read_bytes())
    where = data.find(frames[3].tobytes()[:4096]) + 1000  # inside frame 3's pixels
    data[where:where + 4096] = random.Random(0).randbytes(4096)
    mcap_file.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        (sequence,) = read(tmp_path, [bag], frame_filter=KEEP_ALL)
    kept = frames_of(sequence)
    assert 10 <= len(kept) <= len(frames) - 15, len(kept)  # the damaged chunk's frames are gone
    assert all(any(np.array_equal(got, want) for want in frames) for got in kept), "no garbage"
    assert caplog.text.count("fail their CRC check") == 1
