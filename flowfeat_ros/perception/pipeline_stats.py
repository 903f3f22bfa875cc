"""Throughput, latency, drop and per-stage timing statistics of the perception worker."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from flowfeat_ros.perception.status_keys import PROCESSED_FRAMES, STAMP_LATENCY

STAGES = ("decode", "preprocess", "model", "postprocess", "track", "publish")
RATE_WINDOW_S = 5.0


class PipelineStats:
    """Thread-safe rolling statistics over the last ``window`` batches / frames."""

    def __init__(self, window: int = 100) -> None:
        self._lock = threading.Lock()
        self._stage_ms: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._batch: dict[str, float] = {}
        self._stamp_latency_ms: deque[float] = deque(maxlen=window)
        self._internal_latency_ms: deque[float] = deque(maxlen=window)
        self._output_times: deque[float] = deque(maxlen=1000)
        self.processed = 0
        self.invalid = 0
        self.batches = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block as part of stage ``name`` of the current batch."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - start) * 1e3
            self._batch[name] = self._batch.get(name, 0.0) + elapsed

    def finish_batch(self) -> None:
        """Close the current batch: its stage times join the rolling window."""
        with self._lock:
            if self._batch:
                for name in STAGES:
                    self._stage_ms[name].append(self._batch.get(name, 0.0))
                self.batches += 1
            self._batch = {}

    def record_frame(self, stamp_latency_s: float | None, internal_latency_s: float) -> None:
        """One frame's outputs were published (``stamp_latency_s`` None: the node clock is not
        running yet, so there is no latency to the stamp)."""
        now = time.monotonic()
        with self._lock:
            self.processed += 1
            if stamp_latency_s is not None:
                self._stamp_latency_ms.append(stamp_latency_s * 1e3)
            self._internal_latency_ms.append(internal_latency_s * 1e3)
            self._output_times.append(now)

    def record_invalid(self) -> None:
        """A frame was skipped because its input was bad."""
        with self._lock:
            self.invalid += 1

    def output_rate_hz(self) -> float:
        """Frames published per second over the last few seconds."""
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._output_times if now - t <= RATE_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def summary(self) -> dict[str, float | int]:
        """Current numbers: rate, latency median/p95, mean stage times and the share of the
        processing time spent outside the model."""
        rate = self.output_rate_hz()
        with self._lock:
            values: dict[str, float | int] = {
                "output_rate_hz": rate, PROCESSED_FRAMES: self.processed,
                "invalid_frames": self.invalid, "batches": self.batches}
            for label, samples in ((STAMP_LATENCY, self._stamp_latency_ms),
                                   ("latency_internal_ms", self._internal_latency_ms)):
                if samples:
                    values[f"{label}_median"] = float(np.median(samples))
                    values[f"{label}_p95"] = float(np.percentile(samples, 95))
            means = {s: float(np.mean(v)) for s, v in self._stage_ms.items() if v}
        for name, mean in means.items():
            values[f"stage_{name}_ms"] = mean
        total = sum(means.values())
        if total > 0:
            values["outside_model_share"] = 1.0 - means.get("model", 0.0) / total
        return values
