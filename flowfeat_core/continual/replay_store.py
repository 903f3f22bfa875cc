"""The bags the on-robot loop keeps: a bounded replay set to train on and a held-out set it never
trains on, both outliving the recorder's own quota.

Each finished bag is admitted once, in name order (the recorder names bags by start time). Its
files are hard-linked (copied across file systems) into ``train/`` or ``heldout/`` through a
temporary folder and a rename, so a crash never leaves half a bag in the store; a bag the
recorder later deletes stays readable here. Admission order decides the split: the ``i``-th
admitted bag is held out when ``ceil((i + 1) * f) > ceil(i * f)`` for the held-out fraction ``f``
(the first bag always; a bag never changes sides).

What is kept: the ``recent`` newest training bags; of the training bags that age out of that
window, a reservoir sample of ``older`` (Vitter's algorithm R: every old bag has the same chance
to be rehearsed, whatever its age); of the held-out bags, a reservoir of ``heldout``. Beyond
``quota_bytes`` the re-creatable caches go first, then older bags, then held-out bags, then the
oldest recent ones (one of each side always stays). A bag that fails ``check`` (corrupt,
truncated, no usable images) is rejected once, with its reason, and never retried; a full disk
rejects nothing (the bag is retried).
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flowfeat_core.process.atomic_io import write_json_atomically

STATE_FILE = "store.json"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class StoreLimits:
    """How much the store keeps (see the module doc)."""

    recent: int = 8
    older: int = 8
    heldout: int = 8
    heldout_fraction: float = 0.25
    quota_bytes: int = 4 * 1024**3

    def __post_init__(self) -> None:
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if min(self.recent, self.heldout) < 1 or self.older < 0:
            raise ValueError(f"recent and heldout must be >= 1 and older >= 0, got {self}")


@dataclass
class AdmitReport:
    """What one :meth:`ReplayStore.admit` call did."""

    train: list[str] = field(default_factory=list)
    heldout: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    evicted: list[str] = field(default_factory=list)


def is_heldout(index: int, fraction: float) -> bool:
    """Whether the ``index``-th admitted bag (0-based) belongs to the held-out set."""
    return math.ceil((index + 1) * fraction) > math.ceil(index * fraction)


def tree_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (0 when it does not exist)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def link_or_copy_folder(source: Path, target: Path) -> None:
    """Recreate ``source``'s files in ``target``: hard links where possible, copies otherwise."""
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.is_file():
            try:
                os.link(path, target / path.name)
            except OSError:
                shutil.copy2(path, target / path.name)


class ReplayStore:
    """The folder ``root`` with ``train/``, ``heldout/`` and ``store.json``; see the module doc.
    ``caches`` are folders whose content can be rebuilt from the bags (decoded frames, teacher
    flow): they count against the quota and are emptied first."""

    def __init__(self, root: Path, limits: StoreLimits = StoreLimits(),
                 caches: tuple[Path, ...] = (), seed: int = 0) -> None:
        self.root = Path(root)
        self.limits = limits
        self.caches = caches
        self.seed = seed
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = self._load_state()
        self._remove_orphans()

    # -- state ------------------------------------------------------------------------------
    def _load_state(self) -> dict:
        path = self.root / STATE_FILE
        state = json.loads(path.read_text()) if path.is_file() else {}
        return {"admitted": 0, "aged_train": 0, "heldout_seen": 0, "trained_through": 0,
                "seen": [], "rejected": {}, "recent": [], "older": [], "heldout": [], **state}

    def _remove_orphans(self) -> None:
        """Delete what a crash left that the saved state does not list (an admission or an
        eviction cut short)."""
        for stale in self.root.glob(".incoming-*"):
            shutil.rmtree(stale, ignore_errors=True)
        listed = {"train": set(self.state["recent"] + self.state["older"]),
                  "heldout": set(self.state["heldout"])}
        for side, names in listed.items():
            for folder in (self.root / side).glob("*"):
                if folder.name not in names:
                    shutil.rmtree(folder, ignore_errors=True)
        for key, side in (("recent", "train"), ("older", "train"), ("heldout", "heldout")):
            self.state[key] = [name for name in self.state[key]
                               if (self.root / side / name).is_dir()]

    def _save_state(self) -> None:
        write_json_atomically(self.root / STATE_FILE, self.state)

    # -- what a round reads -----------------------------------------------------------------
    def train_bags(self) -> list[Path]:
        """Training bags: the reservoir of older ones, then the recent ones (oldest first)."""
        return self._existing("train", self.state["older"] + self.state["recent"])

    def heldout_bags(self) -> list[Path]:
        """Held-out bags in admission order."""
        return self._existing("heldout", self.state["heldout"])

    def _existing(self, side: str, names: list[str]) -> list[Path]:
        """Listed bags still on disk (an eviction deletes before the state is saved)."""
        return [path for path in (self.root / side / name for name in list(names))
                if path.is_dir()]

    def new_training_bags(self) -> int:
        """Training bags admitted since the last :meth:`mark_trained`."""
        return self.state["admitted"] - self.state["heldout_seen"] - self.state["trained_through"]

    def mark_trained(self) -> None:
        """Record that a round started on every training bag admitted so far."""
        self.state["trained_through"] = self.state["admitted"] - self.state["heldout_seen"]
        self._save_state()

    @property
    def rejected(self) -> dict[str, str]:
        """Bag name -> why it was rejected."""
        return dict(self.state["rejected"])

    def size_bytes(self) -> int:
        """Bytes the store and its caches take on disk."""
        return tree_bytes(self.root) + sum(tree_bytes(cache) for cache in self.caches)

    # -- admission --------------------------------------------------------------------------
    def admit(self, bags: list[Path], check: Callable[[Path], None] = lambda bag: None
              ) -> AdmitReport:
        """Admit the bags not seen before, in the given order. ``check(bag)`` runs on the
        stored copy (so what it caches is keyed to the path training reads) and raises
        ``ValueError`` or ``OSError`` for a bag not to keep. A full disk (ENOSPC/EDQUOT, while
        linking, copying or checking) is raised after the quota was enforced, with the store
        consistent; that bag is retried on the next call."""
        report = AdmitReport()
        try:
            for bag in bags:
                if bag.name not in self.state["seen"]:
                    self._admit_one(bag, check, report)
        finally:
            report.evicted += self.enforce_quota()
            self._save_state()
        return report

    def _admit_one(self, bag: Path, check: Callable[[Path], None], report: AdmitReport) -> None:
        held = is_heldout(self.state["admitted"], self.limits.heldout_fraction)
        stored = self.root / ("heldout" if held else "train") / bag.name
        incoming = self.root / f".incoming-{bag.name}"
        try:
            link_or_copy_folder(bag, incoming)
            stored.parent.mkdir(exist_ok=True)
            incoming.rename(stored)
            check(stored)
        except (ValueError, OSError) as error:
            shutil.rmtree(incoming, ignore_errors=True)
            shutil.rmtree(stored, ignore_errors=True)
            if isinstance(error, OSError) and error.errno in DISK_FULL:
                raise
            if not bag.is_dir():
                return  # deleted meanwhile (the recorder's quota): nothing to keep
            self.state["seen"].append(bag.name)
            report.rejected[bag.name] = self.state["rejected"][bag.name] = (
                str(error) or type(error).__name__)
            return
        self.state["seen"].append(bag.name)
        self.state["admitted"] += 1
        if held:
            report.heldout.append(bag.name)
            self.state["heldout_seen"] += 1
            report.evicted += self._reservoir_add("heldout", bag.name, self.limits.heldout,
                                                  self.state["heldout_seen"])
            return
        report.train.append(bag.name)
        self.state["recent"].append(bag.name)
        while len(self.state["recent"]) > self.limits.recent:
            aged = self.state["recent"].pop(0)
            self.state["aged_train"] += 1
            report.evicted += self._reservoir_add("older", aged, self.limits.older,
                                                  self.state["aged_train"])

    def _reservoir_add(self, key: str, name: str, capacity: int, seen_count: int) -> list[str]:
        """Algorithm R: the ``seen_count``-th item enters a full reservoir with probability
        capacity / seen_count, replacing a uniformly chosen member. Returns the evicted name."""
        members = self.state[key]
        if len(members) < capacity:
            members.append(name)
            return []
        slot = random.Random(f"{self.seed}-{key}-{seen_count}").randrange(seen_count)
        if slot >= capacity:
            self._delete(name)
            return [name]
        evicted = members.pop(slot)
        members.append(name)
        self._delete(evicted)
        return [evicted]

    def _delete(self, name: str) -> None:
        for side in ("train", "heldout"):
            shutil.rmtree(self.root / side / name, ignore_errors=True)

    # -- quota ------------------------------------------------------------------------------
    def enforce_quota(self) -> list[str]:
        """Free space down to the quota (module doc's order); returns the evicted bag names.
        The store is measured once; each removal subtracts what it frees."""
        used = self.size_bytes()
        if used <= self.limits.quota_bytes:
            return []
        for cache in self.caches:
            used -= tree_bytes(cache)
            shutil.rmtree(cache, ignore_errors=True)
        evicted = []
        for key, side, keep in (("older", "train", 0), ("heldout", "heldout", 1),
                                ("recent", "train", 1)):
            members = self.state[key]
            while len(members) > keep and used > self.limits.quota_bytes:
                name = members.pop(0)
                used -= tree_bytes(self.root / side / name)
                self._delete(name)
                evicted.append(name)
        return evicted
