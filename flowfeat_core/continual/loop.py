"""The on-robot loop's state on disk and its two moves: take in finished bags, run a round.

Shared by the ``flowfeat_round`` command and the ROS ``trainer`` node, so both read and write the
same work folder::

    <work>/replay/     the replay and held-out bags (replay_store.py)
    <work>/cache/      decoded frames, teacher flow and depth labels, shared by rounds (rebuilt
                       when deleted)
    <work>/round_NNNN/ one round: its bags (plan.json), TensorBoard logs, candidate, round.json
    <work>/tensorboard the gate numbers of every round (one point per round)

One process at a time works in a folder (an flock on ``<work>/.lock``): the trainer node and a
``flowfeat_round`` by hand refuse to share it. Only the newest ``KEPT_ROUNDS`` round folders
are kept.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flowfeat_core.continual.bag_sets import finished_bags
from flowfeat_core.continual.deployment import Deployment, load_error
from flowfeat_core.continual.replay_store import DISK_FULL, AdmitReport, ReplayStore, StoreLimits
from flowfeat_core.continual.training_round import (
    RESULT_FILE,
    RoundCaches,
    RoundResult,
    RoundSettings,
    run_round,
)
from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_core.process.atomic_io import write_json_atomically

ROUND_PREFIX = "round_"
PLAN_FILE = "plan.json"
KEPT_ROUNDS = 20


@dataclass(frozen=True)
class LoopSettings:
    """Everything a loop needs besides its folders."""

    settle_s: float = 10.0
    keep: int = 3
    limits: StoreLimits = field(default_factory=StoreLimits)
    round: RoundSettings = field(default_factory=RoundSettings)


def round_folders(work: Path) -> list[Path]:
    """The round folders in ``work``, oldest first."""
    return sorted(Path(work).glob(f"{ROUND_PREFIX}[0-9][0-9][0-9][0-9]"))


def round_number(folder: Path) -> int:
    """The NNNN of ``round_NNNN``."""
    return int(folder.name[len(ROUND_PREFIX):])


def _file_signature(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns) of ``path``, or None when it does not exist."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def round_folder(work: Path) -> Path:
    """The newest round if it has no result yet (it was stopped or killed), else a new one."""
    rounds = round_folders(work)
    if rounds and not (rounds[-1] / RESULT_FILE).is_file():
        return rounds[-1]
    number = round_number(rounds[-1]) + 1 if rounds else 1
    return Path(work) / f"{ROUND_PREFIX}{number:04d}"


class ContinualLoop:
    """Bags from ``bags_dir`` (the recorder's output_dir) in, candidates for ``deployed`` out.
    ``deployed`` is created from ``initial`` (anything load_model accepts) before the first round
    when it does not exist."""

    def __init__(self, bags_dir: Path, work_dir: Path, deployed: Path, initial: str = "default",
                 settings: LoopSettings = LoopSettings()) -> None:
        self.bags_dir = Path(bags_dir).expanduser().resolve()
        self.work_dir = Path(work_dir).expanduser().resolve()
        if self.work_dir.is_relative_to(self.bags_dir):
            raise ValueError(f"the work folder {self.work_dir} must not be inside the bag folder "
                             f"{self.bags_dir} (its copies would be taken for new bags)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = (self.work_dir / ".lock").open("a")  # held while this object lives
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ValueError(f"{self.work_dir} is in use by another trainer node or "
                             "flowfeat_round") from None
        self.deployed = Path(deployed).expanduser().resolve()
        self.initial = initial
        self._verified: tuple[int, int] | None = None  # (size, mtime) of the file last loaded
        self.settings = settings
        cache = self.work_dir / "cache"
        self.caches = RoundCaches(frames=cache / "frames", flow=cache / "flow",
                                  depth_labels=cache / "depth_labels")
        self.store = ReplayStore(self.work_dir / "replay", settings.limits, caches=(cache,))

    def take_in_bags(self, now: float | None = None) -> AdmitReport:
        """Admit the bags that finished since the last call (raises OSError on a full disk)."""
        return self.store.admit(finished_bags(self.bags_dir, self.settings.settle_s, now),
                                check=self._check_bag)

    def _check_bag(self, bag: Path) -> None:
        """Decode the bag's frames into the cache, as training will; a failure rejects the bag,
        except a full disk (raised as is, so the bag is retried)."""
        try:
            build_frame_sequences(bags=[bag], topic=self.settings.round.topic,
                                  max_side=self.settings.round.max_side,
                                  cache_dir=self.caches.frames)
        except Exception as error:  # a corrupt bag can fail anywhere in its reader
            if isinstance(error, OSError) and error.errno in DISK_FULL:
                raise
            raise ValueError(f"{type(error).__name__}: {error}") from error

    def blocker(self) -> str | None:
        """Why no round can run now, or None."""
        train, heldout = self.store.train_bags(), self.store.heldout_bags()
        if train and heldout:
            return None
        return (f"{len(train)} training and {len(heldout)} held-out bag(s) kept; a round needs at "
                "least one of each")

    def repair_deployed(self) -> str:
        """Make the deployed file loadable and tracked in the history: create it from
        ``initial`` when missing; when damaged, put back the newest history entry, or recreate it
        from ``initial`` when there is no history yet. Returns what was done ('' = nothing).
        Cheap when nothing changed: the file is only loaded again after its size or mtime did."""
        signature = _file_signature(self.deployed)
        if signature is not None and signature == self._verified:
            return ""
        deployment = Deployment(self.deployed, self.settings.keep)
        problem = load_error(self.deployed) if signature is not None else "missing"
        done = ""
        if problem is not None:
            entry = deployment.restore()
            if entry is not None:
                done = f"deployed file {self.deployed} was damaged ({problem}); restored {entry.name}"
            else:
                self._create_from_initial()
                state = "missing" if signature is None else f"damaged ({problem}) with no history"
                done = (f"deployed file {self.deployed} was {state}; created it from initial "
                        f"model {self.initial!r}")
        entry = deployment.track()
        if entry is not None and not done:
            done = f"deployed file {self.deployed} recorded in its history as {entry.name}"
        self._verified = _file_signature(self.deployed)
        return done

    def _create_from_initial(self) -> None:
        from flowfeat_core.hub.checkpoint import save_checkpoint
        from flowfeat_core.hub.loading import load_model

        save_checkpoint(self.deployed, load_model(self.initial), {"source": self.initial})

    def next_round(self) -> Path:
        """The folder the next :meth:`run_round` works in (an unfinished round is resumed)."""
        return round_folder(self.work_dir)

    def run_round(self, should_stop: Callable[[], bool] = lambda: False) -> RoundResult:
        """Train, score, judge and maybe deploy (see training_round.py); the result is also
        logged to TensorBoard. ``should_stop`` is polled every training step. A round keeps the
        bags it started with when resumed; a deployed file damaged on disk is restored first."""
        folder = self.next_round()
        plan = self._plan(folder)
        self.repair_deployed()
        result = run_round(self.deployed, plan["train"], plan["heldout"], folder,
                           self.settings.round, self.settings.keep, should_stop, self.caches)
        if not result.stopped:
            self._log(round_number(folder), result)
            for old in round_folders(self.work_dir)[:-KEPT_ROUNDS]:
                shutil.rmtree(old, ignore_errors=True)
        return result

    def _plan(self, folder: Path) -> dict[str, list[Path]]:
        """The round's bags: fixed at its first start (those still kept when it resumes)."""
        path = folder / PLAN_FILE
        if path.is_file():
            saved = json.loads(path.read_text())
            plan = {side: [Path(bag) for bag in saved[side] if Path(bag).is_dir()]
                    for side in ("train", "heldout")}
            if all(plan.values()):
                return plan
        reason = self.blocker()
        if reason:
            raise ValueError(reason)
        plan = {"train": self.store.train_bags(), "heldout": self.store.heldout_bags()}
        write_json_atomically(path, {side: [str(bag) for bag in bags] for side, bags in plan.items()})
        self.store.mark_trained()
        return plan

    def _log(self, number: int, result: RoundResult) -> None:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(self.work_dir / "tensorboard")) as writer:
            for name, scores in (("candidate", result.candidate), ("deployed", result.deployed)):
                writer.add_scalar(f"heldout_loss/{name}", scores.loss, number)
                writer.add_scalar(f"heldout_epe/{name}", scores.epe_dense, number)
                writer.add_scalar(f"effective_rank/{name}", scores.features.effective_rank, number)
            writer.add_scalar("round/deployed", float(result.decision.passed), number)
            writer.add_scalar("round/train_seconds", result.train_seconds, number)
