"""Which recorded bags a training round may read, and which ones it must never train on.

A bag counts as finished once its ``metadata.yaml`` exists (rosbag2 and our recorder write it when
they close the bag; a killed recorder's bag gets it when the recorder recovers the bag at its next
start) and nothing in its folder changed for ``settle_s`` seconds. The held-out set is a fixed
fraction of the bags in name order (the recorder names bags by their start time, so new bags come
last): bag ``i`` is held out when ``ceil((i + 1) * fraction) > ceil(i * fraction)``. The first bag is
always held out, and a bag never moves between the sets as later bags arrive.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

METADATA = "metadata.yaml"


def finished_bags(root: Path, settle_s: float = 10.0, now: float | None = None) -> list[Path]:
    """Bag folders under ``root`` (at any depth) that are closed and settled, in name order."""
    now = time.time() if now is None else now
    bags = []
    for metadata in Path(root).rglob(METADATA):
        folder = metadata.parent
        newest = max(path.stat().st_mtime for path in folder.iterdir() if path.is_file())
        if now - newest >= settle_s:
            bags.append(folder)
    return sorted(bags, key=lambda folder: (folder.name, str(folder)))


@dataclass(frozen=True)
class BagSplit:
    """``train``: bags a round may train on; ``heldout``: bags only ever used for scoring."""

    train: tuple[Path, ...]
    heldout: tuple[Path, ...]


def split_bags(bags: list[Path], heldout_fraction: float) -> BagSplit:
    """Split name-ordered ``bags`` as the module doc says (stable as bags are appended)."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    train, heldout = [], []
    for index, bag in enumerate(bags):
        held = math.ceil((index + 1) * heldout_fraction) > math.ceil(index * heldout_fraction)
        (heldout if held else train).append(bag)
    return BagSplit(tuple(train), tuple(heldout))


@dataclass(frozen=True)
class ReplayPolicy:
    """The bags one round trains on: the ``recent`` newest, plus up to ``older`` of the rest
    drawn at random with ``seed`` (reservoir-style: every older bag has the same chance), so old
    scenes keep being rehearsed while new ones dominate."""

    recent: int = 8
    older: int = 8
    seed: int = 0

    def choose(self, train_bags: tuple[Path, ...], round_index: int) -> list[Path]:
        recent = list(train_bags[-self.recent:]) if self.recent else []
        rest = list(train_bags[: len(train_bags) - len(recent)])
        picked = random.Random(f"{self.seed}-{round_index}").sample(rest, min(self.older, len(rest)))
        return sorted(picked, key=train_bags.index) + recent
