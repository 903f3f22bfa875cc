"""The loaded model and probes (a ``Runtime``) and their background loading with atomic swap.

The worker reads ``RuntimeManager.current`` once per batch; a new runtime is built on a loader
thread and replaces the reference in one assignment, so the stream never stops and a batch
never mixes two models. A load that fails leaves the running runtime in place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowfeat_core.hub.checkpoint import Attachment
from flowfeat_core.hub.errors import CheckpointError, WeightsUnavailableError
from flowfeat_core.hub.loading import load_model_with_attachments
from flowfeat_core.inference.backends import AUTO
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.fingerprint import model_fingerprint
from flowfeat_core.probes.binding import MODEL_DIGEST, channel_problem, trained_on
from flowfeat_core.probes.heads import TASKS
from flowfeat_core.probes.io import SHIPPED_PROBE, ProbeError, attached_probe, probe_file
from flowfeat_ros.perception.parameters import PerceptionSettings
from flowfeat_ros.perception.probe_loading import ProbeLoadError, load_task_probe


class RuntimeLoadError(ValueError):
    """Model or probe loading failed; the message is one line naming what and why."""


@dataclass
class Runtime:
    """A ready-to-run predictor with its optional probes, built for one set of settings."""

    settings: PerceptionSettings
    predictor: Predictor
    depth_probe: Any | None = None
    segmentation_probe: Any | None = None
    file_times: dict[str, float] = field(default_factory=dict)
    #: The running model's fingerprint (flowfeat_core.models.fingerprint).
    fingerprint: str = ""
    #: task -> why that probe's outputs are stopped (it was trained on another model).
    stopped_probes: dict[str, str] = field(default_factory=dict)
    #: Tasks whose probe records no model fingerprint (saved before they were recorded).
    unverified_probes: tuple[str, ...] = ()
    #: What the checkpoint file carries besides the model (probes attached by the loop).
    attachments: dict[str, Attachment] = field(default_factory=dict)
    #: Tasks served by the probe attached to the checkpoint (their source is "default").
    attached_tasks: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """Short human-readable summary for logs and diagnostics."""
        parts = [self.settings.checkpoint]
        if self.settings.backend not in (AUTO, "torch"):  # auto logs what serves on each change
            parts.append(f"backend={self.settings.backend}")
        for task in TASKS:
            if getattr(self, f"{task}_probe") is not None:
                source = ("attached to the checkpoint" if task in self.attached_tasks
                          else getattr(self.settings, f"{task}_probe"))
                parts.append(f"{task}={source}")
        return " ".join(parts)


def watched_files(settings: PerceptionSettings) -> list[Path]:
    """The files a runtime for ``settings`` was loaded from (for reload-on-change)."""
    paths = [Path(settings.checkpoint).expanduser()] + [
        probe_file(name) for name in (settings.depth_probe, settings.segmentation_probe) if name]
    return [path for path in paths if path.is_file()]


def file_times(settings: PerceptionSettings) -> dict[str, float]:
    """Modification times of the watched files of ``settings``."""
    times = {}
    for path in watched_files(settings):
        try:
            times[str(path)] = path.stat().st_mtime
        except OSError:
            continue
    return times


def _build_predictor(settings: PerceptionSettings) -> tuple[Predictor, dict[str, Attachment]]:
    """The predictor and the checkpoint's attachments, read from one version of the file (a
    deploy that replaces it meanwhile cannot pair the new model with the old probe)."""
    exact = ((settings.input_height, settings.input_width) if settings.input_width else None)
    try:
        model, attachments = load_model_with_attachments(settings.checkpoint)
        return Predictor(model, device=settings.device, precision=settings.precision,
                         input_short_side=settings.input_short_side, input_hw=exact,
                         backend=settings.backend), attachments
    except (CheckpointError, WeightsUnavailableError, OSError, ImportError, ValueError) as error:
        raise RuntimeLoadError(f"checkpoint {settings.checkpoint!r}: {error}") from error
    except Exception as error:  # torch/timm failing on a file that passed the checks: still a
        # refused load (reverted, logged, in diagnostics), never a silent or fatal one
        raise RuntimeLoadError(f"checkpoint {settings.checkpoint!r}: {type(error).__name__}: "
                               f"{error}") from error


def _load_probe(path: str, task: str, predictor: Predictor,
                attachments: dict[str, Attachment], checkpoint: str) -> tuple[Any | None, bool]:
    """The probe ``path`` names and whether it is the one attached to the checkpoint (the
    ``"default"`` source prefers it to the shipped probe)."""
    if not path:
        return None, False
    try:
        probe = attached_probe(attachments, task, checkpoint) if path == SHIPPED_PROBE else None
        attached = probe is not None
        if probe is None:
            probe = load_task_probe(path, task)
    except (ProbeLoadError, ProbeError) as error:
        raise RuntimeLoadError(str(error)) from error
    problem = channel_problem(probe, predictor.model)
    if problem:
        raise RuntimeLoadError(f"{task} probe {path!r} {problem}")
    if hasattr(probe, "to"):
        probe = probe.to(predictor.device)
    if hasattr(probe, "eval"):
        probe.eval()
    return probe, attached


def build_runtime(settings: PerceptionSettings, previous: Runtime | None = None,
                  force: bool = False) -> Runtime:
    """Load what ``settings`` ask for, reusing parts of ``previous`` that did not change
    (unless ``force``, which reloads everything from disk)."""
    times = file_times(settings)
    reuse = previous is not None and not force
    if reuse and previous.settings.model_key() == settings.model_key():
        predictor, fingerprint = previous.predictor, previous.fingerprint
        attachments = previous.attachments
    else:
        predictor, attachments = _build_predictor(settings)
        fingerprint = model_fingerprint(predictor.model)
    probes, stopped, unverified, attached = {}, {}, [], []
    for task, path in (("depth", settings.depth_probe),
                       ("segmentation", settings.segmentation_probe)):
        same = reuse and predictor is previous.predictor and getattr(
            previous.settings, f"{task}_probe") == path
        if same:
            probes[task] = getattr(previous, f"{task}_probe")
            if task in previous.stopped_probes:
                stopped[task] = previous.stopped_probes[task]
            if task in previous.unverified_probes:
                unverified.append(task)
            if task in previous.attached_tasks:
                attached.append(task)
            continue
        probe, is_attached = _load_probe(path, task, predictor, attachments, settings.checkpoint)
        if is_attached:
            attached.append(task)
        bound = None if probe is None else trained_on(probe, fingerprint)
        if bound is False:
            stopped[task] = (f"{task} probe {path!r} was trained on model "
                             f"{probe.model_info[MODEL_DIGEST]}, not on the running model "
                             f"{fingerprint}: its outputs are stopped (deploy a probe trained "
                             "on this model)")
            probe = None
        elif probe is not None and bound is None:
            unverified.append(task)
        probes[task] = probe
    return Runtime(settings, predictor, probes["depth"], probes["segmentation"], times,
                   fingerprint, stopped, tuple(unverified), attachments, tuple(attached))


class RuntimeManager:
    """Holds the current runtime and swaps in new ones loaded on a background thread."""

    def __init__(self, initial: Runtime,
                 on_failure: Callable[[str, PerceptionSettings], None],
                 on_swap: Callable[[Runtime], None]) -> None:
        self.current = initial
        self._on_failure = on_failure
        self._on_swap = on_swap
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowfeat-loader")
        self._lock = threading.Lock()
        self._generation = 0
        self.requested_key = initial.settings.runtime_key()
        self.last_error = ""

    def request(self, settings: PerceptionSettings, force: bool = False) -> Future:
        """Load a runtime for ``settings`` in the background; the future yields it or raises
        RuntimeLoadError. Only the newest request is swapped in."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            self.requested_key = settings.runtime_key()
        return self._executor.submit(self._load, settings, force, generation)

    def _load(self, settings: PerceptionSettings, force: bool, generation: int) -> Runtime:
        try:
            runtime = build_runtime(settings, self.current, force)
        except RuntimeLoadError as error:
            with self._lock:
                newest = generation == self._generation
                if newest:
                    self.requested_key = self.current.settings.runtime_key()
                    self.last_error = str(error)
            if newest:
                self._on_failure(str(error), self.current.settings)
            raise
        with self._lock:
            if generation != self._generation:
                return runtime  # superseded by a newer request: never swapped in
            self.current = runtime
            self.last_error = ""
        self._on_swap(runtime)
        return runtime

    def shutdown(self) -> None:
        """Stop the loader thread (a load in progress finishes first)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
