"""Held-out batches are reproducible and follow the chosen crop protocol; the CLI reports a model
next to the untrained decoder and fails with one line on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bag_writing import read_video_frames, write_image_bag

from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_core.training.heldout import heldout_batches


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("heldout_bag")
    return write_image_bag(root / "vtest", read_video_frames("vtest.avi", 10, 96, start=300))


def test_batches_are_reproducible_and_protocols_differ(small_bag: Path) -> None:
    sequences = build_frame_sequences(bags=[small_bag], max_side=96)
    first = heldout_batches(sequences, 64, "training", max_pairs=6)
    again = heldout_batches(sequences, 64, "training", max_pairs=6)
    shifted = heldout_batches(sequences, 64, "shifted", max_pairs=6)
    assert sum(len(batch["image1"]) for batch in first) == 6
    for key in ("image1", "image2", "flow1", "flow2"):
        assert torch.equal(first[0][key], again[0][key])
    assert not torch.equal(first[0]["image1"], shifted[0]["image1"])
    with pytest.raises(ValueError, match="crop protocol"):
        heldout_batches(sequences, 64, "random")
    with pytest.raises(ValueError, match="no frame pairs"):
        heldout_batches([], 64)


def test_cli_reports_model_and_untrained_decoder(small_bag: Path) -> None:
    command = [sys.executable, "-m", "flowfeat_core.cli.heldout", "--model", "default",
               "--input-size", "64", "--max-side", "96", "--max-pairs", "4"]  # fmt: skip
    result = subprocess.run([*command, "--bags", str(small_bag)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["model", "untrained"]
    assert all("pairs 4" in line and "loss" in line for line in lines)
    missing = subprocess.run(
        [*command, "--bags", str(small_bag.parent / "nothing")], capture_output=True, text=True, timeout=300
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and len(missing.stderr.strip().splitlines()) == 1
