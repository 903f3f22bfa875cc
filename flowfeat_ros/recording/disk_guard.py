"""Disk limits for the recorder: the total quota over its bags and a minimum free-space floor."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def bag_name_pattern(prefix: str) -> re.Pattern[str]:
    """Directory names the recorder creates (and is therefore allowed to delete)."""
    return re.compile(rf"^{re.escape(prefix)}_\d{{8}}-\d{{6}}-\d{{3}}_\d{{4}}$")


def directory_size(path: Path) -> int:
    """Bytes used by the regular files under ``path`` (0 if it vanished meanwhile)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def recorder_bags(output_dir: Path, prefix: str) -> list[Path]:
    """The recorder's bag directories in ``output_dir``, oldest first (names begin with a time)."""
    pattern = bag_name_pattern(prefix)
    if not output_dir.is_dir():
        return []
    return sorted(p for p in output_dir.iterdir() if p.is_dir() and pattern.match(p.name))


def enforce_quota(
    output_dir: Path, prefix: str, quota_bytes: int, current: Path | None
) -> list[Path]:
    """Delete the oldest bags (never ``current``) until all bags fit in ``quota_bytes``.

    Returns the deleted bag directories. Only directories named like the recorder's bags are
    considered, so nothing else in ``output_dir`` is ever touched.
    """
    bags = recorder_bags(output_dir, prefix)
    sizes = {bag: directory_size(bag) for bag in bags}
    total = sum(sizes.values())
    deleted: list[Path] = []
    for bag in bags:
        if total <= quota_bytes:
            break
        if bag == current:
            continue
        shutil.rmtree(bag, ignore_errors=True)
        total -= sizes[bag]
        deleted.append(bag)
    return deleted


def free_bytes(path: Path) -> int:
    """Free bytes available to this (unprivileged) process on the filesystem holding ``path``."""
    return shutil.disk_usage(path).free


class SpaceReserve:
    """A preallocated file that keeps room for closing the current bag: released when a write
    fails for lack of space, so the bag's last chunk, index and metadata.yaml still fit, and
    taken again once space is back. Free-space checks cannot prevent this alone: another process
    can fill the disk between two of them."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def hold(self) -> bool:
        """Make sure the reserve exists; False when there is not room for it (yet)."""
        if self.path.is_file() and self.path.stat().st_size >= self.size:
            return True
        try:
            with self.path.open("wb") as stream:
                os.posix_fallocate(stream.fileno(), 0, self.size)
        except OSError:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Give the reserved space back to the file system."""
        self.path.unlink(missing_ok=True)
