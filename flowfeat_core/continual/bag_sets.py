"""Which recorded bags the on-robot loop may read: never one still being written.

A bag counts as finished once its ``metadata.yaml`` exists (rosbag2 and our recorder write it when
they close the bag; a killed recorder's bag gets it when the recorder recovers the bag at its next
start) and nothing in its folder changed for ``settle_s`` seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

METADATA = "metadata.yaml"


def finished_bags(root: Path, settle_s: float = 10.0, now: float | None = None) -> list[Path]:
    """Bag folders under ``root`` (at any depth) that are closed and settled, in name order."""
    now = time.time() if now is None else now
    bags = []
    for metadata in Path(root).rglob(METADATA):
        folder = metadata.parent
        try:
            newest = max(path.stat().st_mtime for path in folder.iterdir() if path.is_file())
        except OSError:  # deleted meanwhile (the recorder's quota)
            continue
        if now - newest >= settle_s:
            bags.append(folder)
    return sorted(bags, key=lambda folder: (folder.name, str(folder)))
