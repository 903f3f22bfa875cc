"""The deployed checkpoint and its history: atomic deploys, the last N kept, rollback.

The deployed file is the one the perception node's ``checkpoint`` parameter names. Every deploy
first checks that the candidate loads, copies it into the history folder beside the deployed file
(``<name>.history/000001.safetensors``, ...), then replaces the deployed file by an atomic,
fsync'ed rename (:func:`flowfeat_core.hub.atomic_io.write_atomically`): a reader, or a crash at
any moment, sees the old file or the new one, never a torn one. The newest history entry is
always the deployed model, so a rollback restores the entry before it.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from flowfeat_core.hub.atomic_io import write_atomically
from flowfeat_core.hub.checkpoint import load_checkpoint
from flowfeat_core.hub.errors import CheckpointError


class DeploymentError(RuntimeError):
    """A deploy or rollback that cannot be done; the deployed file is unchanged."""


class Deployment:
    """Deploys candidates to ``path`` and keeps the last ``keep`` deployed models."""

    def __init__(self, path: Path, keep: int = 3) -> None:
        if keep < 2:
            raise ValueError(f"keep must be >= 2 (the deployed model and one to roll back to), got {keep}")
        self.path = Path(path)
        self.keep = keep
        self.history_dir = self.path.with_name(self.path.name + ".history")

    def history(self) -> list[Path]:
        """Deployed models, oldest first; the last one is the deployed file's content."""
        if not self.history_dir.is_dir():
            return []
        return sorted(self.history_dir.glob("[0-9]" * 6 + ".safetensors"))

    def deploy(self, candidate: Path) -> Path:
        """Make ``candidate`` the deployed model; returns its history entry."""
        candidate = Path(candidate)
        try:
            load_checkpoint(candidate)  # a half-written or foreign file is never deployed
        except (CheckpointError, OSError, ValueError) as error:
            raise DeploymentError(f"candidate {candidate} cannot be deployed: {error}") from error
        if self.path.is_file() and not self.history():
            self._record(self.path)  # the model deployed before this tool: rollback's first target
        entry = self._record(candidate)
        write_atomically(self.path, lambda temporary: shutil.copyfile(entry, temporary))
        for old in self.history()[:-self.keep]:
            old.unlink()
        return entry

    def rollback(self) -> Path:
        """Restore the model deployed before the current one; returns its history entry."""
        entries = self.history()
        if len(entries) < 2:
            raise DeploymentError(f"nothing to roll back to: {len(entries)} deployed model(s) "
                                  f"in {self.history_dir}")
        current, previous = entries[-1], entries[-2]
        write_atomically(self.path, lambda temporary: shutil.copyfile(previous, temporary))
        current.unlink()
        return previous

    def restore(self) -> Path | None:
        """Put the newest history entry back if the deployed file no longer matches it (damaged
        or replaced by hand); returns that entry, or None when the file matches or there is no
        history."""
        entries = self.history()
        if not entries or (self.path.is_file() and filecmp.cmp(self.path, entries[-1],
                                                               shallow=False)):
            return None
        write_atomically(self.path, lambda temporary: shutil.copyfile(entries[-1], temporary))
        return entries[-1]

    def _record(self, source: Path) -> Path:
        entries = self.history()
        number = int(entries[-1].stem) + 1 if entries else 1
        entry = self.history_dir / f"{number:06d}.safetensors"
        return write_atomically(entry, lambda temporary: shutil.copyfile(source, temporary))
