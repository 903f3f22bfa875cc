"""The moving-camera training corpus: textures disjoint from the benchmark's (by path and by
content), camera nuisances on colour only, colour-only bags that training reads like a robot's."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from flowfeat_core.cli.synthetic import main as synthetic_main
from flowfeat_core.data.bag_reader import image_topic_counts
from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_core.probes.real_images import REAL_PHOTOS
from flowfeat_core.synthetic.benchmark import generate_sequence
from flowfeat_core.synthetic.textures import BENCHMARK_PHOTOS, pool_photos, training_photos

SIZE = {"height": 64, "width": 80, "frames": 3}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_pool_never_holds_a_benchmark_photo():
    training = training_photos()
    assert len(training) >= 50, "every usable photo of opencv-doc and scikit-image"
    assert not set(training) & BENCHMARK_PHOTOS
    assert not {_digest(path) for path in training} & {_digest(path) for path in BENCHMARK_PHOTOS}
    assert set(REAL_PHOTOS) <= BENCHMARK_PHOTOS
    with pytest.raises(ValueError, match="texture pool"):
        pool_photos("everything", 0)


def test_training_sequences_use_only_training_textures_and_benchmark_only_its_own():
    training = set(training_photos())
    for index in range(6):
        corpus = generate_sequence(5, index, "train", textures="training", **SIZE)
        assert corpus.texture_sources <= training
        assert not corpus.texture_sources & BENCHMARK_PHOTOS
        benchmark = generate_sequence(5, index, "test", **SIZE)
        assert benchmark.texture_sources <= BENCHMARK_PHOTOS


def test_photometric_nuisances_change_colour_only():
    clean = generate_sequence(2, 0, "train", textures="training", **SIZE)
    degraded = generate_sequence(2, 0, "train", textures="training", photometric=True, **SIZE)
    again = generate_sequence(2, 0, "train", textures="training", photometric=True, **SIZE)
    for plain, noisy, repeat in zip(clean.frames, degraded.frames, again.frames, strict=True):
        assert np.array_equal(noisy.rgb, repeat.rgb), "deterministic"
        assert np.abs(noisy.rgb.astype(int) - plain.rgb).mean() > 1.0
        assert np.array_equal(noisy.flow, plain.flow) and np.array_equal(noisy.depth, plain.depth)
        assert np.array_equal(noisy.classes, plain.classes)


def test_corpus_bags_hold_colour_only_and_train_like_a_robots(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--textures", "training", "--photometric", "--no-labels", "--format",
            "bag", "--sequences", "2", "--frames", "4", "--height", "64", "--width", "80"]  # fmt: skip
    assert synthetic_main(args) == 0
    bags = sorted((tmp_path / "bags").iterdir())
    assert [bag.name for bag in bags] == ["training_train_0_000", "training_train_0_001"]
    assert image_topic_counts(bags[0]) == {"/camera/color/image_raw": 4}
    sequences = build_frame_sequences(bags=[tmp_path / "bags"], max_side=80)
    assert sum(len(sequence) for sequence in sequences) == 8
    with pytest.raises(SystemExit) as refused:
        synthetic_main([*args[:2], "--sequences", "0"])
    assert refused.value.code == 2
