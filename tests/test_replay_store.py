"""The loop's replay store on real bag folders: the held-out split never moves, the kept sets stay
bounded (recent + reservoir), the quota evicts in the documented order, corrupt bags are rejected
once, a crash mid-admission leaves nothing half-stored, and kept bags outlive the recorder's
deletions."""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from bag_writing import read_video_frames, write_image_bag

from flowfeat_core.continual.loop import ContinualLoop, LoopSettings
from flowfeat_core.continual.replay_store import ReplayStore, StoreLimits, is_heldout

KB = 1024


def fake_bag(root: Path, name: str, size: int = KB) -> Path:
    """A closed bag folder (payload + metadata.yaml) of about ``size`` bytes."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{name}_0.mcap").write_bytes(os.urandom(size))
    (folder / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    return folder


def bags(root: Path, count: int, size: int = KB) -> list[Path]:
    return [fake_bag(root, f"bag_{index:03d}", size) for index in range(count)]


def test_the_heldout_split_is_a_fixed_fraction_that_never_moves(tmp_path: Path) -> None:
    assert [i for i in range(9) if is_heldout(i, 0.25)] == [0, 4, 8]
    recorded = bags(tmp_path / "rec", 9)
    store = ReplayStore(tmp_path / "store", StoreLimits(recent=20, heldout=20))
    store.admit(recorded[:5])
    first = ([p.name for p in store.train_bags()], [p.name for p in store.heldout_bags()])
    store = ReplayStore(tmp_path / "store", StoreLimits(recent=20, heldout=20))  # a restart
    report = store.admit(recorded)
    assert report.heldout == ["bag_008"] and len(report.train) == 3  # only the new ones
    assert [p.name for p in store.heldout_bags()] == ["bag_000", "bag_004", "bag_008"]
    assert [p.name for p in store.train_bags()][:3] == first[0]
    assert not set(first[1]) & {p.name for p in store.train_bags()}


def test_kept_sets_are_bounded_and_old_bags_are_sampled_uniformly(tmp_path: Path) -> None:
    limits = StoreLimits(recent=2, older=3, heldout=2, heldout_fraction=0.2)
    recorded = bags(tmp_path / "rec", 40)
    store = ReplayStore(tmp_path / "store", limits)
    report = store.admit(recorded)
    names = [p.name for p in store.train_bags()]
    assert len(names) == 5 and names[-2:] == ["bag_038", "bag_039"]  # 3 older + 2 recent
    assert len(store.heldout_bags()) == 2
    on_disk = sorted(p.name for side in ("train", "heldout") for p in (store.root / side).iterdir())
    assert on_disk == sorted(names + [p.name for p in store.heldout_bags()])
    assert len(report.evicted) == 40 - 7

    # Algorithm R: over many seeds, each aged-out bag is equally likely to be kept.
    counts: Counter[str] = Counter()
    for seed in range(150):
        sampled = ReplayStore(tmp_path / f"s{seed}", StoreLimits(recent=1, older=2, heldout=1,
                                                                 heldout_fraction=0.1), seed=seed)
        sampled.admit(recorded[:10])  # bag_000 held out; bag_001..bag_008 age out, bag_009 recent
        counts.update(p.name for p in sampled.train_bags()[:-1])
    aged = [f"bag_{index:03d}" for index in range(1, 9)]
    assert set(counts) <= set(aged) and sum(counts.values()) == 300, counts
    assert min(counts[name] for name in aged) > 20 and max(counts.values()) < 55, counts  # 37.5


def test_the_quota_empties_caches_first_then_older_then_heldout_then_recent(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "frames").mkdir(parents=True)
    (cache / "frames" / "x.frames").write_bytes(os.urandom(50 * KB))
    recorded = bags(tmp_path / "rec", 8, size=10 * KB)
    limits = StoreLimits(recent=3, older=2, heldout=2, heldout_fraction=0.25, quota_bytes=200 * KB)
    store = ReplayStore(tmp_path / "store", limits, caches=(cache,))
    store.admit(recorded)
    assert cache.exists() and len(store.train_bags()) == 5  # 8 bags + cache fit in the quota

    store.limits = StoreLimits(recent=3, older=2, heldout=2, heldout_fraction=0.25,
                               quota_bytes=45 * KB)
    evicted = store.enforce_quota()
    assert not cache.exists()
    assert [p.name for p in store.train_bags()] == ["bag_005", "bag_006", "bag_007"]
    assert len(evicted) == 3 and len(store.heldout_bags()) == 1  # older first, then held-out
    assert store.size_bytes() <= 45 * KB

    store.limits = StoreLimits(recent=3, older=2, heldout=2, heldout_fraction=0.25, quota_bytes=1)
    store.enforce_quota()
    assert len(store.train_bags()) == len(store.heldout_bags()) == 1  # one of each always stays


def test_kept_bags_outlive_the_recorders_deletions(tmp_path: Path) -> None:
    recorded = bags(tmp_path / "rec", 2)
    payload = (recorded[1] / "bag_001_0.mcap").read_bytes()
    store = ReplayStore(tmp_path / "store")
    store.admit(recorded)
    for bag in recorded:  # the recorder's quota
        for path in bag.iterdir():
            path.unlink()
        bag.rmdir()
    assert (store.train_bags()[0] / "bag_001_0.mcap").read_bytes() == payload


def test_a_crash_mid_admission_leaves_no_half_bag(tmp_path: Path) -> None:
    recorded = bags(tmp_path / "rec", 3)
    store = ReplayStore(tmp_path / "store")
    store.admit(recorded[:1])
    # What a SIGKILL leaves: a half-linked incoming folder and a bag moved in but not recorded.
    (store.root / ".incoming-bag_002").mkdir()
    (store.root / ".incoming-bag_002" / "part").write_bytes(b"x")
    (store.root / "train").mkdir(exist_ok=True)
    (store.root / "train" / "bag_001").mkdir()
    restarted = ReplayStore(tmp_path / "store")
    assert sorted(p.name for p in restarted.root.iterdir()) == ["heldout", "store.json", "train"]
    assert not (restarted.root / "train" / "bag_001").exists()
    report = restarted.admit(recorded)
    assert report.train == ["bag_001", "bag_002"]
    assert json.loads((restarted.root / "store.json").read_text())["admitted"] == 3


def test_a_full_disk_during_admission_keeps_the_store_consistent(tmp_path: Path,
                                                                 monkeypatch) -> None:
    recorded = bags(tmp_path / "rec", 3)
    store = ReplayStore(tmp_path / "store")

    def no_space(*_args) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("flowfeat_core.continual.replay_store.os.link", no_space)
    monkeypatch.setattr("flowfeat_core.continual.replay_store.shutil.copy2", no_space)
    with pytest.raises(OSError, match="No space"):
        store.admit(recorded)
    assert not list(store.root.glob(".incoming-*")) and store.state["seen"] == []
    monkeypatch.undo()
    assert len(ReplayStore(tmp_path / "store").admit(recorded).train) == 2


def test_a_full_disk_while_checking_retries_the_bag_and_other_errors_reject_it(tmp_path: Path
                                                                              ) -> None:
    recorded = bags(tmp_path / "rec", 3)
    store = ReplayStore(tmp_path / "store")

    def check(bag: Path) -> None:  # the frame cache filling the disk, or an unreadable file
        raise OSError(errno.ENOSPC if bag.name == "bag_001" else errno.EIO, "no luck")

    with pytest.raises(OSError, match="no luck"):
        store.admit(recorded[:2], check)
    assert store.rejected == {"bag_000": "[Errno 5] no luck"} and "bag_001" not in store.state["seen"]
    report = ReplayStore(tmp_path / "store").admit(recorded)
    assert (report.heldout, report.train, report.rejected) == (["bag_001"], ["bag_002"], {})


def test_new_training_bags_survive_a_restart(tmp_path: Path) -> None:
    recorded = bags(tmp_path / "rec", 6)
    store = ReplayStore(tmp_path / "store")
    store.admit(recorded[:3])
    assert store.new_training_bags() == 2
    store.mark_trained()
    store.admit(recorded)
    assert ReplayStore(tmp_path / "store").new_training_bags() == 2  # bag_003, bag_005


def test_a_corrupt_bag_is_rejected_once_with_its_reason(tmp_path: Path) -> None:
    frames = read_video_frames("vtest.avi", 4, 96)
    good = [write_image_bag(tmp_path / "rec" / f"bag_{i:03d}", frames) for i in range(2)]
    truncated = write_image_bag(tmp_path / "rec" / "bag_002", frames)
    mcap = next(truncated.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 3])
    loop = ContinualLoop(tmp_path / "rec", tmp_path / "work", tmp_path / "deployed.safetensors",
                         settings=LoopSettings(settle_s=0))
    report = loop.take_in_bags()
    assert list(report.rejected) == ["bag_002"] and report.rejected["bag_002"]
    assert [p.name for p in loop.store.heldout_bags()] == [good[0].name]
    assert [p.name for p in loop.store.train_bags()] == [good[1].name]
    assert loop.blocker() is None
    again = loop.take_in_bags()
    assert not again.rejected and not again.train  # never retried
    with pytest.raises(ValueError, match="must not be inside"):
        ContinualLoop(tmp_path / "rec", tmp_path / "rec" / "work", tmp_path / "d.safetensors")
    with pytest.raises(ValueError, match="in use by another trainer node or flowfeat_round"):
        ContinualLoop(tmp_path / "rec", tmp_path / "work", tmp_path / "deployed.safetensors")
