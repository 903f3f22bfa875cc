"""One round of the on-robot loop: train a candidate from the deployed model on recorded bags,
score both on the held-out bags, fit both a depth probe from the bags' own motion
(depth_step.py), deploy the candidate with its probe attached only if it passes the gates.

A round lives in its own folder. Training state is saved there on a stop (and every
``save_every`` steps), so a round killed or stopped part-way resumes where it was; the candidate
is scored only once training finished, and deployed only through :class:`Deployment` (load check,
atomic rename), so a half-written checkpoint is never deployed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from flowfeat_core.continual.deployment import Deployment, DeploymentError, file_digest
from flowfeat_core.continual.depth_step import DepthStep, DepthStepSettings, run_depth_step
from flowfeat_core.continual.gates import GateDecision, GateThresholds, judge_candidate
from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_core.hub.loading import load_model
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.io import attach_probes
from flowfeat_core.process.atomic_io import write_json_atomically
from flowfeat_core.training.config import TrainConfig
from flowfeat_core.training.heldout import (
    HeldOutScores,
    evaluate_heldout,
    heldout_batches,
    label_free_scores,
)
from flowfeat_core.training.trainer import FINAL_CHECKPOINT, STATE_FILE, Trainer

RESULT_FILE = "round.json"
BASE_FILE = "base.json"
#: The candidate with its depth probe attached: what is deployed when the bags gave depth labels.
DEPLOYABLE_FILE = "flowfeat_with_probes.safetensors"


def _base_digest(folder: Path, deployed: Path) -> str:
    """The digest of the deployed model the round trains from, fixed at the round's first start
    (a resumed round continues from its saved state, not from whatever is deployed now)."""
    path = folder / BASE_FILE
    if not path.is_file():
        write_json_atomically(path, {"deployed": str(deployed), "sha256": file_digest(deployed)})
    return json.loads(path.read_text())["sha256"]


@dataclass(frozen=True)
class RoundSettings:
    """Budget and settings of a round (short cosine runs from the deployed decoder, as the
    default decoder was trained; the encoder-keeping term on, the coding-rate term off, as for
    the default: the real-image yardstick ranked that recipe best)."""

    steps: int = 300
    batch_size: int = 4
    input_size: int = 128
    max_side: int = 256
    lr: float = 1e-4
    rank_weight: float = TrainConfig.rank_weight
    keep_weight: float = TrainConfig.keep_weight
    keep_directions: int = TrainConfig.keep_directions
    heldout_pairs: int = 48
    label_free: bool = True  # score propagation and stability on the held-out frames too
    device: str = "cpu"
    workers: int = 0
    save_every: int = 50
    topic: str | None = None
    progress_bar: bool = True
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    depth: DepthStepSettings = field(default_factory=DepthStepSettings)


@dataclass(frozen=True)
class RoundCaches:
    """Where decoded frames, teacher flow and depth labels are cached; shared by rounds, all are
    rebuilt from the bags when deleted. None: the defaults (frames under ~/.cache, flow and
    labels in the round folder)."""

    frames: Path | None = None
    flow: Path | None = None
    depth_labels: Path | None = None


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
    depth: DepthStep = field(default_factory=lambda: DepthStep(skipped="the round stopped"))

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
        keep_weight=settings.keep_weight, keep_directions=settings.keep_directions,
        max_side=settings.max_side, workers=settings.workers, device=settings.device,
        save_every=settings.save_every, image_every=10 * settings.steps,
        progress_bar=settings.progress_bar, frame_cache=caches.frames, flow_cache=caches.flow,
        resume=(folder / STATE_FILE).is_file())


def score_heldout(models: dict[str, FlowFeat], batches: list, sequences: list,
                  settings: RoundSettings) -> dict[str, HeldOutScores]:
    """Name -> held-out loss, EPE and rank on the fixed batches, plus the label-free real measures
    on the held-out frames when ``settings.label_free`` is on (one pass for all models)."""
    scores = {name: evaluate_heldout(model, batches, settings.input_size) for name, model in models.items()}
    if not settings.label_free:
        return scores
    measures = label_free_scores(models, sequences)
    return {name: replace(score, label_free=measures[name]) for name, score in scores.items()}


def run_round(deployed: Path, train_bags: list[Path], heldout_bags: list[Path], folder: Path,
              settings: RoundSettings = RoundSettings(), keep: int = 3,
              should_stop: Callable[[], bool] = lambda: False,
              caches: RoundCaches | None = None) -> RoundResult:
    """Train, score, judge and (when the gates pass) deploy; see the module doc. A candidate is
    deployed only if the deployed file is still the model the round started from (else it is
    refused: a rollback during the round stands). Once the round has its result, its resume state
    and periodic checkpoints are deleted."""
    caches = caches or RoundCaches()
    if not train_bags or not heldout_bags:
        raise ValueError(f"a round needs training and held-out bags, got {len(train_bags)} and "
                         f"{len(heldout_bags)}")
    started = time.perf_counter()
    base = _base_digest(folder, deployed)
    trainer = Trainer(train_config(deployed, train_bags, folder, settings, caches))
    trained_before = trainer.step >= settings.steps  # this call resumes a finished training
    if not trained_before and trainer.train(should_stop).interrupted:
        return RoundResult(folder, trainer.step, time.perf_counter() - started, None, None)
    steps, train_seconds = trainer.step, time.perf_counter() - started
    candidate = folder / FINAL_CHECKPOINT
    deployment = Deployment(deployed, keep)
    history = deployment.history()
    # Deployed by this very round before a restart: score it against the model it replaced.
    already_deployed = len(history) >= 2 and file_digest(deployed) in (
        file_digest(candidate), file_digest(folder / DEPLOYABLE_FILE))
    if trained_before and not already_deployed:
        # Training was done before a restart, but the final checkpoint may be missing or stale
        # (killed between the last state save and the final save): write it from the state.
        trainer.save(candidate)
    baseline = history[-2] if already_deployed else deployed
    sequences = build_frame_sequences(bags=heldout_bags, topic=settings.topic,
                                      max_side=settings.max_side, cache_dir=caches.frames)
    batches = heldout_batches(sequences, settings.input_size, max_pairs=settings.heldout_pairs,
                              cache_dir=caches.flow)
    models = {"deployed": load_model(baseline), "candidate": load_model(candidate)}
    scores = score_heldout(models, batches, sequences, settings)
    deployed_scores, candidate_scores = scores["deployed"], scores["candidate"]
    decision = judge_candidate(candidate_scores, deployed_scores, settings.thresholds)
    depth = DepthStep(skipped="the candidate failed a gate before the depth step")
    if decision.passed:  # probes are fitted only for a candidate that may be deployed
        depth = run_depth_step(models, train_bags, heldout_bags,
                               caches.depth_labels or folder / "depth_labels",
                               replace(settings.depth, max_side=settings.max_side),
                               settings.topic, settings.device)
        decision = judge_candidate(candidate_scores, deployed_scores, settings.thresholds,
                                   depth.comparison)
    entry = history[-1] if already_deployed else None
    if decision.passed and not already_deployed:
        deployable = candidate
        if "candidate" in depth.probes:
            deployable = attach_probes(candidate, {"depth": depth.probes["candidate"]},
                                       folder / DEPLOYABLE_FILE)
        try:
            entry = deployment.deploy(deployable, expected=base)
        except DeploymentError as error:
            decision = GateDecision((f"not deployed: {error}",), decision.summary)
    result = RoundResult(folder, steps, train_seconds, decision, entry, candidate_scores,
                         deployed_scores, depth)
    write_json_atomically(folder / RESULT_FILE, {
        "steps": steps, "train_seconds": train_seconds, "passed": decision.passed,
        "failures": list(decision.failures), "summary": decision.summary,
        "deployed_entry": str(entry) if entry else None,
        "candidate": asdict(candidate_scores), "deployed": asdict(deployed_scores),
        "depth": depth.summary(),
    })
    (folder / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # periodic saves, for resuming only
    return result
