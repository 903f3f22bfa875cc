"""Video files and image folders as training sequences (real opencv-doc video and images)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from bag_writing import OPENCV_DATA, read_video_frames

from flowfeat_core.data.errors import DataError
from flowfeat_core.data.sequences import FrameFilter
from flowfeat_core.data.sources import build_frame_sequences

KEEP_ALL = FrameFilter(static_threshold=0.0)


def test_real_video_file_by_glob_is_resized(tmp_path: Path) -> None:
    (sequence,) = build_frame_sequences(videos=[str(OPENCV_DATA / "tre*.avi")], max_side=64,
                                        frame_filter=KEEP_ALL, cache_dir=tmp_path)
    assert sequence.source_id == str((OPENCV_DATA / "tree.avi").resolve())
    # Every frame VideoCapture.read() yields: 68 (CAP_PROP_FRAME_COUNT claims 444).
    assert len(sequence) == 68
    assert sequence.frame(0).shape == (48, 64, 3)
    assert np.all(np.diff(sequence.stamps_ns) == round(1e9 / 14.999925000374999))


def test_written_video_reads_back_in_order(tmp_path: Path) -> None:
    frames = read_video_frames("vtest.avi", 12, 96)
    path = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 72))
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    (sequence,) = build_frame_sequences(videos=[path], frame_filter=KEEP_ALL,
                                        cache_dir=tmp_path / "cache")
    assert len(sequence) == 12
    errors = [np.abs(sequence.frame(i).astype(int) - frames[i]).mean() for i in range(12)]
    assert max(errors) < 6  # MJPG is lossy; a frame out of order differs far more
    assert np.abs(sequence.frame(0).astype(int) - frames[11]).mean() > max(errors)


def test_image_folder_in_natural_order(tmp_path: Path) -> None:
    frames = read_video_frames("vtest.avi", 11, 80)
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"frame{number}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("ignored")
    (sequence,) = build_frame_sequences(images=[folder], frame_filter=KEEP_ALL,
                                        cache_dir=tmp_path / "cache")
    assert len(sequence) == 11
    assert all(np.array_equal(sequence.frame(i), frames[i]) for i in range(11))


def test_bad_videos_and_folders_raise_data_errors(tmp_path: Path) -> None:
    (tmp_path / "fake.avi").write_bytes(b"not a video" * 100)
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "single").mkdir()
    cv2.imwrite(str(tmp_path / "single" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    cases = [
        ({"videos": [str(tmp_path / "*.mp4")]}, "no video file matches"),
        ({"videos": [tmp_path / "fake.avi"]}, "OpenCV cannot open video"),
        ({"images": [tmp_path / "empty"]}, "contains no .png"),
        ({"images": [tmp_path / "texts"]}, "contains no .png"),
        ({"images": [tmp_path / "texts" / "a.txt"]}, "is not a directory"),
        ({"images": [tmp_path / "broken"]}, "cannot read image"),
        ({"images": [tmp_path / "single"]}, "fewer than 2 usable frames"),
    ]
    for inputs, problem in cases:
        with pytest.raises(DataError, match=problem) as caught:
            build_frame_sequences(**inputs, cache_dir=tmp_path / "cache")
        assert "\n" not in str(caught.value)


def test_video_frame_range_keeps_the_clips_time_line(tmp_path: Path) -> None:
    (sequence,) = build_frame_sequences(videos=[f"{OPENCV_DATA / 'tree.avi'}@5:15"], max_side=64,
                                        frame_filter=KEEP_ALL, cache_dir=tmp_path)
    assert sequence.source_id.endswith("tree.avi@5:15") and len(sequence) == 10
    period = round(1e9 / 14.999925000374999)
    assert sequence.stamps_ns[0] == 5 * period
    whole = build_frame_sequences(videos=[str(OPENCV_DATA / "tree.avi")], max_side=64,
                                  frame_filter=KEEP_ALL, cache_dir=tmp_path)[0]
    assert np.array_equal(sequence.frame(0), whole.frame(5))
    with pytest.raises(DataError, match="empty frame range"):
        build_frame_sequences(videos=[f"{OPENCV_DATA / 'tree.avi'}@9:3"], cache_dir=tmp_path)


def test_scene_cut_splits_a_sequence_but_camera_motion_does_not(tmp_path: Path) -> None:
    """Two real clips joined in one folder (a cut at frame 8) give two sequences; the tree clip's
    hand-held motion alone is never cut."""
    folder = tmp_path / "joined"
    folder.mkdir()
    joined = read_video_frames("tree.avi", 8, 128) + read_video_frames("vtest.avi", 8, 128)
    size = (joined[0].shape[1], joined[0].shape[0])
    for number, frame in enumerate(joined):
        cv2.imwrite(str(folder / f"frame{number}.png"), cv2.resize(frame, size))
    sequences = build_frame_sequences(images=[folder], max_side=128, frame_filter=KEEP_ALL,
                                      cache_dir=tmp_path / "cache")
    assert [len(sequence) for sequence in sequences] == [8, 8]
    (tree,) = build_frame_sequences(videos=[str(OPENCV_DATA / "tree.avi")], max_side=128,
                                    frame_filter=KEEP_ALL, cache_dir=tmp_path / "cache")
    assert len(tree) == 68
