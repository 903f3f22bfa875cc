"""One round of the on-robot loop: train a candidate from the deployed model on recorded bags,
score both on the held-out bags, deploy the candidate only if it passes the gates.

A round lives in its own folder. Training state is saved there on a stop (and every
``save_every`` steps), so a round killed or stopped part-way resumes where it was; the candidate
is scored only once training finished, and deployed only through :class:`Deployment` (load check,
atomic rename), so a half-written checkpoint is never deployed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flowfeat_core.continual.deployment import Deployment
from flowfeat_core.continual.gates import GateDecision, GateThresholds, judge_candidate
from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_core.hub.atomic_io import write_atomically
from flowfeat_core.hub.loading import load_model
from flowfeat_core.training.config import TrainConfig
from flowfeat_core.training.heldout import HeldOutScores, evaluate_heldout, heldout_batches
from flowfeat_core.training.trainer import STATE_FILE, Trainer

RESULT_FILE = "round.json"


@dataclass(frozen=True)
class RoundSettings:
    """Budget and settings of a round (short cosine runs from the deployed decoder, as the
    default decoder was trained; the anti-collapse term on)."""

    steps: int = 300
    batch_size: int = 4
    input_size: int = 128
    max_side: int = 256
    lr: float = 1e-4
    rank_weight: float = 1.0
    heldout_pairs: int = 48
    device: str = "cpu"
    workers: int = 0
    save_every: int = 50
    topic: str | None = None
    progress_bar: bool = True
    thresholds: GateThresholds = field(default_factory=GateThresholds)


@dataclass(frozen=True)
class RoundCaches:
    """Where decoded frames and teacher flow are cached; shared by rounds, both are rebuilt from
    the bags when deleted. None: the defaults (frames under ~/.cache, flow in the round folder)."""

    frames: Path | None = None
    flow: Path | None = None


@dataclass(frozen=True)
class RoundResult:
    """What a round did: ``decision`` is None when it was stopped before scoring."""

    folder: Path
    steps: int
    train_seconds: float
    decision: GateDecision | None
    deployed_entry: Path | None
    candidate: HeldOutScores | None = None
    deployed: HeldOutScores | None = None

    @property
    def stopped(self) -> bool:
        return self.decision is None


def train_config(deployed: Path, train_bags: list[Path], folder: Path,
                 settings: RoundSettings, caches: RoundCaches | None = None) -> TrainConfig:
    """The trainer's settings for a round (resuming when the folder holds saved state)."""
    caches = caches or RoundCaches()
    return TrainConfig(
        bags=[str(bag) for bag in train_bags], topic=settings.topic, init=str(deployed), out=folder,
        steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr, lr_schedule="cosine",
        warmup_steps=min(20, settings.steps - 1), ema_decay=0.99, ema_every=1,
        input_size=settings.input_size, rank_weight=settings.rank_weight,
        max_side=settings.max_side, workers=settings.workers, device=settings.device,
        save_every=settings.save_every, image_every=10 * settings.steps,
        progress_bar=settings.progress_bar, frame_cache=caches.frames, flow_cache=caches.flow,
        resume=(folder / STATE_FILE).is_file())


def run_round(deployed: Path, train_bags: list[Path], heldout_bags: list[Path], folder: Path,
              settings: RoundSettings = RoundSettings(), keep: int = 3,
              should_stop: Callable[[], bool] = lambda: False,
              caches: RoundCaches | None = None) -> RoundResult:
    """Train, score, judge and (when the gates pass) deploy; see the module doc. Once the round
    has its result, its resume state is deleted (it is only needed to continue training)."""
    caches = caches or RoundCaches()
    if not train_bags or not heldout_bags:
        raise ValueError(f"a round needs training and held-out bags, got {len(train_bags)} and "
                         f"{len(heldout_bags)}")
    started = time.perf_counter()
    trainer = Trainer(train_config(deployed, train_bags, folder, settings, caches))
    summary = trainer.train(should_stop) if trainer.step < settings.steps else None
    steps = trainer.step
    train_seconds = time.perf_counter() - started
    if summary is not None and summary.interrupted:
        return RoundResult(folder, steps, train_seconds, None, None)
    sequences = build_frame_sequences(bags=heldout_bags, topic=settings.topic,
                                      max_side=settings.max_side, cache_dir=caches.frames)
    batches = heldout_batches(sequences, settings.input_size, max_pairs=settings.heldout_pairs,
                              cache_dir=caches.flow)
    deployed_scores = evaluate_heldout(load_model(deployed), batches, settings.input_size)
    candidate_scores = evaluate_heldout(load_model(folder / "flowfeat.safetensors"), batches,
                                        settings.input_size)
    decision = judge_candidate(candidate_scores, deployed_scores, settings.thresholds)
    entry = (Deployment(deployed, keep).deploy(folder / "flowfeat.safetensors") if decision.passed
             else None)
    result = RoundResult(folder, steps, train_seconds, decision, entry, candidate_scores,
                         deployed_scores)
    text = json.dumps({
        "steps": steps, "train_seconds": train_seconds, "passed": decision.passed,
        "failures": list(decision.failures), "summary": decision.summary,
        "deployed_entry": str(entry) if entry else None,
        "candidate": asdict(candidate_scores), "deployed": asdict(deployed_scores),
    }, indent=2)
    write_atomically(folder / RESULT_FILE, lambda temporary: Path(temporary).write_text(text))
    (folder / STATE_FILE).unlink(missing_ok=True)
    return result
