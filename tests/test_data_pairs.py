"""FramePairDataset over sequences read from a real bag: pairs, flips, determinism, workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from bag_writing import read_video_frames, write_image_bag
from torch.utils.data import DataLoader

from flowfeat_core.data.pairs import FramePairDataset
from flowfeat_core.data.sequences import FrameFilter
from flowfeat_core.data.sources import build_frame_sequences

START_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def sequences(tmp_path_factory: pytest.TempPathFactory) -> list:
    """Two sequences (12 and 8 frames, split by a 5 s gap) from one mcap bag of vtest.avi."""
    root = tmp_path_factory.mktemp("pairs")
    stamps = [START_NS + i * 100_000_000 for i in range(12)]
    stamps += [stamps[-1] + 5_000_000_000 + i * 100_000_000 for i in range(8)]
    bag = write_image_bag(root / "bag", read_video_frames("vtest.avi", 20, 64), stamps_ns=stamps)
    found = build_frame_sequences(bags=[bag], cache_dir=root / "cache",
                                  frame_filter=FrameFilter(static_threshold=0.0))
    assert [len(sequence) for sequence in found] == [12, 8]
    return found


def test_pairs_cover_every_gap_within_sequences(sequences: list) -> None:
    dataset = FramePairDataset(sequences, gap=2, seed=0)
    assert len(dataset) == (11 + 10) + (7 + 6)
    seen = set()
    for item in range(len(dataset)):
        sample = dataset[item]
        rows = {sample["index_a"], sample["index_b"]}
        seen.add(frozenset(rows))
        assert 1 <= abs(sample["index_a"] - sample["index_b"]) <= 2
        assert rows <= set(range(12)) or rows <= set(range(12, 20))  # never across the gap
    assert len(seen) == len(dataset)


def test_sample_content_and_types(sequences: list) -> None:
    sample = FramePairDataset(sequences, gap=1, seed=0, flip_probability=0.0)[0]
    assert sample["frame_a"].dtype == torch.uint8 and sample["frame_a"].shape == (3, 48, 64)
    assert np.array_equal(sample["frame_a"].permute(1, 2, 0).numpy(), sequences[0].frame(0))
    assert np.array_equal(sample["frame_b"].permute(1, 2, 0).numpy(), sequences[0].frame(1))
    assert sample["source_id"].endswith("bag:/camera/image_raw")
    assert (sample["index_a"], sample["index_b"]) == (0, 1)


def flips(dataset: FramePairDataset) -> list[bool]:
    return [dataset[i]["index_a"] > dataset[i]["index_b"] for i in range(len(dataset))]


def test_time_flips_are_seeded(sequences: list) -> None:
    first = flips(FramePairDataset(sequences, seed=7))
    assert first == flips(FramePairDataset(sequences, seed=7))
    assert first != flips(FramePairDataset(sequences, seed=8))
    assert 0.25 < np.mean(first) < 0.75
    next_epoch = FramePairDataset(sequences, seed=7)
    next_epoch.set_epoch(1)
    assert flips(next_epoch) != first
    with pytest.raises(ValueError, match="gap must be >= 1"):
        FramePairDataset(sequences, gap=0)


def test_dataloader_workers_match_direct_access(sequences: list) -> None:
    dataset = FramePairDataset(sequences, seed=3)
    assert len(pickle.dumps(dataset)) < 20_000  # paths and indices only, never frame data
    loader = DataLoader(dataset, batch_size=8, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(batch["index_a"]) for batch in batches) == len(dataset)
    direct = [dataset[i] for i in range(8)]
    assert torch.equal(batches[0]["frame_a"], torch.stack([s["frame_a"] for s in direct]))
    assert batches[0]["index_b"].tolist() == [s["index_b"] for s in direct]
