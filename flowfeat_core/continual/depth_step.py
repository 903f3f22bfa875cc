"""A round's depth step: depth probes learned from the robot's own motion, for the candidate and
(as its reference) the deployed model, both fitted on the training bags' labels and scored on the
held-out bags' (probes/motion_labels.py). The candidate's probe is deployed attached to it.

A bag gives labels when it has camera_info (the recorder records it by default) and the camera
moved; labels are metric when every labelled bag has odometry or /tf to the camera, else
relative (and the probes are scored median-scaled). Labels are computed once per bag and cached
beside the loop's other caches: kept bags never change, so later rounds only fit probes. A bag
without labels is cached with its reason and not read again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from flowfeat_core.continual.gates import DepthComparison
from flowfeat_core.data.camera_recording import read_camera_recording
from flowfeat_core.data.errors import DataError
from flowfeat_core.geometry.motion_depth import MotionDepthConfig
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.heads import Probe
from flowfeat_core.probes.labeled_data import LabeledPair
from flowfeat_core.probes.motion_labels import motion_labels
from flowfeat_core.probes.training import FitConfig
from flowfeat_core.probes.workflow import make_spec, model_description, score_on_pairs, train_on_pairs
from flowfeat_core.process.atomic_io import write_atomically
from flowfeat_core.training.teacher_flow import make_teacher_flow

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DepthStepSettings:
    """How labels are made and probes fitted on the dense features: by default a linear head on
    the pixel alone. ``context`` adds the image's mean feature and the pixel's position, as the
    shipped probe has (learned from 507 frames): from the few dozen frames of a first round its
    128 scene-level inputs overfit (metric AbsRel on 12 held-out frames, three runs of
    tests/test_trainer_node.py's odometry round: 0.69 to 13.5 with it, 0.44 to 0.52 without).
    ``head="conv"`` fits the spatial head, which gives better metric depth on a robot's own
    scenes at several minutes more per round (README, "Depth without a depth sensor")."""

    enabled: bool = True
    head: str = "linear"
    context: bool = False
    frames_per_bag: int = 8  # labelled frames per bag at most (evenly spaced)
    max_side: int = 256  # frames are shrunk to this long side (the round's max_side)
    teacher: str = "dis"
    fit_steps: int | None = None  # None: the head's own default (FitConfig)
    pixels_per_image: int = 1024


@dataclass
class BagLabels:
    """One bag's motion labels (empty with ``reason`` when it gives none)."""

    pairs: list[LabeledPair] = field(default_factory=list)
    metric: bool = False
    reason: str = ""


@dataclass
class DepthStep:
    """What the step did: probes and the comparison, or why there are none (``skipped``)."""

    probes: dict[str, Probe] = field(default_factory=dict)
    comparison: DepthComparison | None = None
    skipped: str = ""
    unlabelled_bags: dict[str, str] = field(default_factory=dict)
    label_seconds: float = 0.0  # labelling bags not labelled before (0 when all were cached)
    fit_seconds: float = 0.0  # fitting and scoring both probes

    def describe(self) -> str:
        """One line for logs and diagnostics."""
        if self.comparison is None:
            return f"no depth probe: {self.skipped}"
        return (f"{self.comparison.describe()}; labels {self.label_seconds:.0f} s, probes "
                f"{self.fit_seconds:.0f} s")

    def summary(self) -> dict[str, object]:
        """For round.json."""
        return {"comparison": asdict(self.comparison) if self.comparison else None,
                "skipped": self.skipped, "unlabelled_bags": self.unlabelled_bags,
                "label_seconds": round(self.label_seconds, 1),
                "fit_seconds": round(self.fit_seconds, 1)}


def _cache_file(bag: Path, settings: DepthStepSettings, topic: str | None, cache: Path) -> Path:
    key = json.dumps([bag.name, topic, settings.frames_per_bag, settings.max_side,
                      settings.teacher, asdict(MotionDepthConfig())], sort_keys=True)
    return cache / f"{bag.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def bag_labels(bag: Path, settings: DepthStepSettings, topic: str | None, cache: Path) -> BagLabels:
    """The motion labels of ``bag`` (from ``cache`` when they were computed before)."""
    path = _cache_file(bag, settings, topic, cache)
    if path.is_file():
        try:
            with np.load(path) as saved:
                reason = str(saved["reason"])
                pairs = list(zip(saved["frames"], saved["depth"], strict=True))
                return BagLabels(pairs, bool(saved["metric"]), reason)
        except (OSError, ValueError, KeyError) as error:
            LOG.warning("depth label cache %s unreadable (%s): computing it again", path, error)
    try:
        recording = read_camera_recording(bag, topic, max_side=settings.max_side)
        every = -(-len(recording.frames) // settings.frames_per_bag)  # <= frames_per_bag frames
        labels = motion_labels([recording], make_teacher_flow(settings.teacher, offline=True),
                               every)
        found = BagLabels(labels.pairs, labels.metric)
    except DataError as error:
        found = BagLabels(reason=str(error))
    frames = np.stack([rgb for rgb, _ in found.pairs]) if found.pairs else np.zeros((0, 1, 1, 3), np.uint8)
    depth = (np.stack([d for _, d in found.pairs]).astype(np.float32) if found.pairs
             else np.zeros((0, 1, 1), np.float32))
    cache.mkdir(parents=True, exist_ok=True)

    def write(temporary: str) -> None:
        with open(temporary, "wb") as stream:  # a file name would get ".npz" appended
            np.savez_compressed(stream, frames=frames, depth=depth, metric=found.metric,
                                reason=found.reason)

    write_atomically(path, write)
    return found


def _labels(bags: list[Path], settings: DepthStepSettings, topic: str | None, cache: Path,
            unlabelled: dict[str, str]) -> tuple[list[LabeledPair], bool]:
    pairs, metric = [], True
    for bag in bags:
        labels = bag_labels(bag, settings, topic, cache)
        if labels.reason:
            unlabelled[bag.name] = labels.reason
            continue
        pairs += labels.pairs
        metric = metric and labels.metric
    return pairs, metric


def fit_depth_probe(model: FlowFeat, pairs: list[LabeledPair], metric: bool,
                    settings: DepthStepSettings, device: str) -> tuple[Probe, Predictor]:
    """A depth probe (``settings.head``) on ``model``'s dense features, bound to the model (its
    fingerprint)."""
    predictor = Predictor(model, device=device)
    spec_for = partial(make_spec, "depth", settings.head, "flowfeat", metric=metric,
                       context=settings.context and settings.head != "conv")
    probe = train_on_pairs(predictor, pairs, spec_for, settings.pixels_per_image,
                           FitConfig.with_steps(settings.fit_steps))
    probe.model_info = model_description(model, "on-robot loop")
    return probe, predictor


def run_depth_step(models: dict[str, FlowFeat], train_bags: list[Path], heldout_bags: list[Path],
                   cache: Path, settings: DepthStepSettings, topic: str | None = None,
                   device: str = "cpu") -> DepthStep:
    """Fit and score a from-motion depth probe for ``models["candidate"]`` and
    ``models["deployed"]`` (same labels, same recipe); see the module doc."""
    step = DepthStep()
    if not settings.enabled:
        step.skipped = "depth step disabled"
        return step
    started = time.perf_counter()
    train, train_metric = _labels(train_bags, settings, topic, cache, step.unlabelled_bags)
    heldout, heldout_metric = _labels(heldout_bags, settings, topic, cache, step.unlabelled_bags)
    step.label_seconds = time.perf_counter() - started
    if not train or not heldout:
        side = "training" if not train else "held-out"
        reasons = sorted(set(step.unlabelled_bags.values()))
        step.skipped = (f"no {side} bag gives depth labels from motion"
                        + (f" ({reasons[0]})" if reasons else ""))
        return step
    metric = train_metric and heldout_metric
    errors, started = {}, time.perf_counter()
    for name in ("deployed", "candidate"):
        probe, predictor = fit_depth_probe(models[name], train, metric, settings, device)
        probe.metrics = {"labels": "motion (metric)" if metric else "motion (relative)",
                         "train_images": len(train), "validation_images": len(heldout),
                         "validation": score_on_pairs(probe, predictor, heldout)}
        errors[name] = probe.metrics["validation"]["abs_rel"]
        step.probes[name] = probe
    step.comparison = DepthComparison(errors["candidate"], errors["deployed"], metric, len(heldout))
    step.fit_seconds = time.perf_counter() - started
    return step
