"""The deployed checkpoint and its history: atomic deploys, the last N kept, rollback.

The deployed file is the one the perception node's ``checkpoint`` parameter names. Every deploy
first checks that the candidate loads, copies it into the history folder beside the deployed file
(``<name>.history/000001.safetensors``, ...), then replaces the deployed file by an atomic,
fsync'ed rename (:func:`flowfeat_core.process.atomic_io.write_atomically`): a reader, or a crash at
any moment, sees the old file or the new one, never a torn one. The newest history entry is
always the deployed model, so a rollback restores the entry before it.

Deploys, rollbacks and restores hold an exclusive lock on ``<name>.history/.lock`` (flock), so
the trainer's round thread, its ``~/rollback`` service and a ``flowfeat_round`` run by hand never
interleave; a deploy can be made conditional on the deployed file being the one a candidate was
trained from (``expected``), so a rollback during a round is never silently undone.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flowfeat_core.hub.checkpoint import model_from_contents, read_checkpoint
from flowfeat_core.hub.errors import CheckpointError
from flowfeat_core.probes.heads import TASKS
from flowfeat_core.probes.io import ProbeError, attached_probe
from flowfeat_core.process.atomic_io import copy_atomically


class DeploymentError(RuntimeError):
    """A deploy or rollback that cannot be done; the deployed file is unchanged."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes ('' when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return ""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def load_error(path: Path) -> str | None:
    """Why ``path`` is not a loadable checkpoint (half-written, foreign, missing, a damaged
    attached probe), or None."""
    try:
        contents = read_checkpoint(path)
        model_from_contents(contents)
        attachments = contents.attachments()
        for task in TASKS:
            attached_probe(attachments, task, str(path))
    except (CheckpointError, ProbeError, OSError, ValueError) as error:
        return str(error)
    return None


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

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.history_dir.mkdir(parents=True, exist_ok=True)
        with (self.history_dir / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def deploy(self, candidate: Path, expected: str | None = None) -> Path:
        """Make ``candidate`` the deployed model; returns its history entry. With ``expected``
        (a :func:`file_digest`), only if the deployed file still has that content."""
        candidate = Path(candidate)
        error = load_error(candidate)  # a half-written or foreign file is never deployed
        if error is not None:
            raise DeploymentError(f"candidate {candidate} cannot be deployed: {error}")
        with self._locked():
            if expected is not None and file_digest(self.path) != expected:
                raise DeploymentError(f"{self.path} changed since the candidate's training "
                                      "started (a rollback or another deploy)")
            if self.path.is_file() and not self.history():
                self._record(self.path)  # the model deployed before this tool: rollback's target
            entry = self._record(candidate)
            copy_atomically(entry, self.path)
            for old in self.history()[:-self.keep]:
                old.unlink()
        return entry

    def rollback(self) -> Path:
        """Restore the model deployed before the current one; returns its history entry."""
        with self._locked():
            entries = self.history()
            if len(entries) < 2:
                raise DeploymentError(f"nothing to roll back to: {len(entries)} deployed "
                                      f"model(s) in {self.history_dir}")
            current, previous = entries[-1], entries[-2]
            copy_atomically(previous, self.path)
            current.unlink()
        return previous

    def restore(self) -> Path | None:
        """Put the newest history entry back when the deployed file is missing or no longer
        loads (damaged on disk); returns that entry, or None when nothing was wrong or there is
        no history. A loadable file replaced by hand is left alone."""
        with self._locked():
            entries = self.history()
            if not entries or load_error(self.path) is None:
                return None
            copy_atomically(entries[-1], self.path)
        return entries[-1]

    def track(self) -> Path | None:
        """Record a loadable deployed file that the history does not hold yet (the initial
        model, or one deployed before this tool), so a later damage can be restored; returns
        the new entry, or None."""
        with self._locked():
            if self.history() or load_error(self.path) is not None:
                return None
            return self._record(self.path)

    def _record(self, source: Path) -> Path:
        entries = self.history()
        number = int(entries[-1].stem) + 1 if entries else 1
        entry = self.history_dir / f"{number:06d}.safetensors"
        return copy_atomically(source, entry)
