"""``python -m flowfeat_core.evaluate --model CKPT``: score FlowFeat features first on the real-image
yardstick (real stereo disparity, propagation and stability along flow-consistent real video; see
:mod:`flowfeat_core.probes.real_yardstick`), then, as a second table, on held-out procedural
sequences (benchmark textures, which the training corpus never uses) against what the same
frozen encoder gives without distillation, with the same probes: depth probe, segmentation probe
and label-propagation J&F. Feature sets (the paper's protocol): bilinear encoder features, the
hypercolumn of all encoder levels, an untrained decoder, FlowFeat, and hypercolumn + FlowFeat;
plus trivial baselines, collapse statistics (effective rank) of every set on the test frames and
on real photos, and the end-point error of the optical-flow teachers. One table, or ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np
import torch

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.inference.device import PRECISIONS
from flowfeat_core.inference.feature_stats import FeatureStats, feature_stats, median_stats, warn_if_collapsed
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.fingerprint import model_fingerprint
from flowfeat_core.models.flowfeat import FlowFeat
from flowfeat_core.probes.baselines import FEATURE_SETS, FeatureSets
from flowfeat_core.probes.binding import channel_problem, trained_on
from flowfeat_core.probes.heads import TASKS, Probe
from flowfeat_core.probes.io import ProbeError, load_probe, probe_file
from flowfeat_core.probes.metrics import DepthMetrics, SegmentationMetrics
from flowfeat_core.probes.real_images import real_images
from flowfeat_core.probes.real_yardstick import FAST_SUBSET, SPLITS, probe_depth_on_stereo, yardstick
from flowfeat_core.probes.training import (
    FitConfig,
    PixelSamples,
    features_of,
    fit_probe,
    predict_map,
    probe_inputs,
)
from flowfeat_core.probes.vos_metrics import jf_scores
from flowfeat_core.probes.workflow import make_spec, resolve_model, score_prediction
from flowfeat_core.synthetic.benchmark import SyntheticSequence, generate_split
from flowfeat_core.synthetic.flow_scores import score_teacher
from flowfeat_core.synthetic.textures import CLASS_COLORS, CLASS_NAMES
from flowfeat_core.tracking.propagation import PropagationConfig, propagate_labels
from flowfeat_core.training.teacher_flow import make_teacher_flow, raft_weights_path

#: A probe reads one feature map; its spec is built as for dense-only features.
PROBE_CHOICE = "flowfeat"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flowfeat_core.evaluate", description=__doc__)
    parser.add_argument("--model", default="default", help="as for the probe CLI (or 'embedded-untrained')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-sequences", type=int, default=8)
    parser.add_argument("--test-sequences", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--head", choices=("linear", "mlp"), default="linear")
    parser.add_argument("--steps", type=int, default=FitConfig.steps)
    parser.add_argument("--pixels-per-image", type=int, default=1024)
    parser.add_argument(
        "--teachers",
        default="dis,farneback",
        help="teacher flows to score (raft_small is added when its weights are cached)",
    )
    parser.add_argument(
        "--no-real-images",
        dest="real_images",
        action="store_false",
        help="skip the statistics on real photos (they need opencv-doc's videos)",
    )
    parser.add_argument(
        "--real-split",
        choices=(*SPLITS, "none"),
        default="report",
        help="real-image yardstick split: 'tune' for choosing settings, 'report' (numbers only)",
    )
    parser.add_argument("--real-fast", action="store_true",
                        help="the yardstick's fast subset (first 24 frames of each clip, 2 start frames)")
    parser.add_argument("--no-synthetic", dest="synthetic", action="store_false",
                        help="skip the procedural benchmark (the second table)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="FlowFeat's forward (reduced precisions autocast the decoder, and the "
                        "encoder where its registry entry allows); the baselines stay fp32")
    parser.add_argument("--depth-probes", nargs="+", default=[],
                        help="depth probe files trained on --model's features ('default': the "
                        "shipped one): also score each on the real split's stereo scenes (rank "
                        "correlation, median-scaled AbsRel)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _targets(frame) -> dict[str, np.ndarray]:
    return {"depth": frame.depth, "segmentation": frame.classes}


def _train_probes(sets: FeatureSets, sequences: list[SyntheticSequence], args: argparse.Namespace) -> dict:
    """Depth and segmentation probes for every feature set, trained on the same pixels."""
    samples: dict[tuple[str, str], PixelSamples] = {}
    specs = {}
    for index, sequence in enumerate(sequences):
        for frame_index, frame in enumerate(sequence.frames):
            maps = sets.maps(frame.rgb)
            for name, features in maps.items():
                for task_index, task in enumerate(TASKS):
                    key = (name, task)
                    if key not in specs:
                        specs[key] = make_spec(
                            task, args.head, PROBE_CHOICE, features, features, True, CLASS_NAMES, CLASS_COLORS
                        )
                        samples[key] = PixelSamples(task, args.pixels_per_image)
                    rng = np.random.default_rng([args.seed, index, frame_index, task_index])
                    target = _targets(frame)[task]
                    samples[key].add(probe_inputs(specs[key], features, features), target, rng)
    config = FitConfig(steps=args.steps, seed=args.seed)
    return {key: fit_probe(specs[key], samples[key], config) for key in specs}


def _trivial(train: list[SyntheticSequence], test: list[SyntheticSequence]) -> dict[str, float]:
    """Predict the training median depth and the majority training class everywhere."""
    depths = np.concatenate([f.depth[f.depth > 0] for s in train for f in s.frames])
    classes = np.concatenate([f.classes[f.classes != 255] for s in train for f in s.frames])
    median, majority = float(np.median(depths)), int(np.bincount(classes).argmax())
    depth_metrics, seg_metrics = DepthMetrics(), SegmentationMetrics(len(CLASS_NAMES))
    for frame in (f for s in test for f in s.frames):
        depth_metrics.add(np.full_like(frame.depth, median), frame.depth, frame.depth > 0)
        seg_metrics.add(np.full_like(frame.classes, majority), frame.classes)
    return {**depth_metrics.result(), **seg_metrics.result()}


def _first_frame_objects(sequence: SyntheticSequence) -> tuple[list[np.ndarray], list[int]]:
    """Instance maps restricted to the objects present in the first frame (DAVIS protocol)."""
    objects = [int(i) for i in np.unique(sequence.frames[0].instances) if i]
    keep = np.isin(np.arange(256), objects)
    return [np.where(keep[f.instances], f.instances, 0).astype(np.uint8) for f in sequence.frames], objects


def _score_test(sets: FeatureSets, probes: dict, test: list[SyntheticSequence]) -> tuple[dict, dict]:
    """Probe metrics and J&F per feature set, and the feature statistics of every test frame."""
    metrics = {
        key: DepthMetrics() if key[1] == "depth" else SegmentationMetrics(len(CLASS_NAMES)) for key in probes
    }
    propagation: dict[str, list[dict]] = {name: [] for name in FEATURE_SETS}
    stats: dict[str, list[FeatureStats]] = {name: [] for name in FEATURE_SETS}
    for sequence in test:
        per_frame = [sets.maps(frame.rgb) for frame in sequence.frames]
        for frame, maps in zip(sequence.frames, per_frame, strict=True):
            for (name, task), probe in probes.items():
                features = maps[name]
                score_prediction(
                    probe, predict_map(probe, features, features), _targets(frame)[task], metrics[name, task]
                )
            for name in FEATURE_SETS:
                stats[name].append(feature_stats(maps[name]))
        truth, objects = _first_frame_objects(sequence)
        if not objects:
            continue
        for name in FEATURE_SETS:
            stacked = torch.cat([maps[name] for maps in per_frame])
            predicted = propagate_labels(stacked, truth[0], int(max(objects)) + 1, PropagationConfig())
            propagation[name].append(jf_scores(predicted, truth, objects))
    results: dict[str, dict] = {name: {} for name in FEATURE_SETS}
    for (name, _), accumulator in metrics.items():
        results[name].update(accumulator.result())
    for name, scores in propagation.items():
        for key in ("j", "f", "jf"):
            results[name][key] = float(np.mean([score[key] for score in scores])) if scores else None
    return results, {name: median_stats(values).to_dict() for name, values in stats.items()}


def real_image_stats(test_sets: FeatureSets, device: str) -> dict[str, FeatureStats]:
    """Median feature statistics of every feature set on the real photos and video frames, at the
    model's preferred input size (the same model and untrained decoder as ``test_sets``)."""
    predictor = test_sets.predictor
    sets = FeatureSets(Predictor(predictor.model, device=device, precision=predictor.precision),
                       test_sets.untrained)
    stats: dict[str, list[FeatureStats]] = {name: [] for name in FEATURE_SETS}
    for image in real_images().values():
        for name, features in sets.maps(image).items():
            stats[name].append(feature_stats(features))
    return {name: median_stats(values) for name, values in stats.items()}


def _teacher_scores(names: str, test: list[SyntheticSequence]) -> dict:
    chosen = [name for name in names.split(",") if name]
    if "raft_small" not in chosen and raft_weights_path("small").is_file():
        chosen.append("raft_small")
    return {name: score_teacher(make_teacher_flow(name, offline=True), test) for name in chosen}


def real_yardstick(model, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The five feature sets on the chosen real split, at the model's preferred input size."""
    sets = FeatureSets.for_predictor(Predictor(model, device=args.device, precision=args.precision),
                                     seed=args.seed)
    return yardstick(sets.maps, args.real_split, **(FAST_SUBSET if args.real_fast else {}))


def real_depth_probes(model: FlowFeat, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Each depth probe's depth on the real split's stereo scenes. Every probe is checked before
    anything is scored: one of another model or with channels that do not fit is refused, as
    the perception node refuses it."""
    probes = {}
    for path in args.depth_probes:
        probe = load_probe(probe_file(path))
        problem = channel_problem(probe, model) if probe.task == "depth" else "is not a depth probe"
        if problem is None and trained_on(probe, model_fingerprint(model)) is False:
            problem = f"was trained on another model than {args.model}"
        if problem:
            raise ProbeError(f"depth probe {path} {problem}")
        probes[str(path)] = probe
    predictor = Predictor(model, device=args.device, precision=args.precision)

    def scores(probe: Probe) -> dict[str, float]:
        return probe_depth_on_stereo(lambda rgb: predict_map(probe, *features_of(predictor, rgb)),
                                     args.real_split)

    return {path: scores(probe) for path, probe in probes.items()} if args.real_split != "none" else {}


def evaluate(args: argparse.Namespace) -> dict:
    """Run the whole evaluation; returns the JSON-ready report."""
    model, model_info = resolve_model(args.model)
    settings = {key: value for key, value in vars(args).items() if key != "json"}
    report: dict = {"model": model_info["source"], "settings": settings}
    probe_scores = real_depth_probes(model, args) if args.depth_probes else {}
    if args.real_split != "none":
        report["real"] = real_yardstick(model, args)
        if probe_scores:
            report["real_depth_probes"] = probe_scores
    if not args.synthetic:
        return report
    size = {"height": args.height, "width": args.width, "frames": args.frames}
    train = generate_split(args.seed, "train", args.train_sequences, **size)
    test = generate_split(args.seed, "test", args.test_sequences, **size)
    sets = FeatureSets.for_predictor(Predictor(model, device=args.device, precision=args.precision,
                                               input_hw=(args.height, args.width)))
    probes = _train_probes(sets, train, args)
    results, test_stats = _score_test(sets, probes, test)
    results["trivial"] = _trivial(train, test)
    feature_statistics = {"test_frames": test_stats}
    if args.real_images:
        real = real_image_stats(sets, args.device)
        warn_if_collapsed(real["flowfeat"], f"{args.model} on real images")
        feature_statistics["real_images"] = {name: stats.to_dict() for name, stats in real.items()}
    report.update(
        results=results,
        feature_stats=feature_statistics,
        teacher_flow_epe=_teacher_scores(args.teachers, test),
    )
    return report


COLUMNS = (
    ("abs_rel", "AbsRel"),
    ("rmse", "RMSE"),
    ("delta1", "d<1.25"),
    ("miou", "mIoU"),
    ("boundary_f", "bF"),
    ("j", "J"),
    ("f", "F"),
    ("jf", "J&F"),
)


REAL_COLUMNS = (
    ("depth_r2", "depth R2"),
    ("propagation_gap2", "prop g2"),
    ("propagation_gap8", "prop g8"),
    ("stability", "stable"),
)


def format_real_table(report: dict) -> str:
    """The real-image yardstick as aligned text (higher is better in every column)."""
    lines = [
        f"model: {report['model']}  (real-image yardstick, split '{report['settings']['real_split']}')",
        f"{'features':<21}" + "".join(f"{title:>10}" for _, title in REAL_COLUMNS),
    ]
    for name, values in report["real"].items():
        cells = [f"{values[k]:10.3f}" if values.get(k) is not None else f"{'-':>10}" for k, _ in REAL_COLUMNS]
        lines.append(f"{name:<21}" + "".join(cells))
    return "\n".join(lines)


def format_probe_table(report: dict) -> str:
    """Depth probes on the real split's stereo scenes as aligned text."""
    lines = [f"{'depth probe (real stereo)':<60}{'rank corr':>10}{'AbsRel med':>12}"]
    for path, values in report["real_depth_probes"].items():
        lines.append(f"{path[-60:]:<60}{values['rank_correlation']:10.3f}"
                     f"{values['abs_rel_median_scaled']:12.3f}")
    return "\n".join(lines)


def format_table(report: dict) -> str:
    """The report as aligned text: the real yardstick first, then the procedural benchmark
    (eRank = median effective rank, test frames / real images)."""
    lines = [format_real_table(report), ""] if "real" in report else []
    if "real_depth_probes" in report:
        lines += [format_probe_table(report), ""]
    if "results" not in report:
        return "\n".join(lines).rstrip()
    stats = report["feature_stats"]
    lines += [
        f"model: {report['model']}  (held-out procedural sequences, benchmark textures, "
        f"{report['settings']['head']} probes)",
        f"{'features':<21}" + "".join(f"{title:>8}" for _, title in COLUMNS) + f"{'eRank test/real':>17}",
    ]
    for name, values in report["results"].items():
        cells = [f"{values[k]:8.3f}" if values.get(k) is not None else f"{'-':>8}" for k, _ in COLUMNS]
        ranks = ""
        if name in stats["test_frames"]:
            real = stats.get("real_images", {}).get(name)
            real_text = f"{real['effective_rank']:.1f}" if real else "-"
            ranks = f"{stats['test_frames'][name]['effective_rank']:>11.1f} / {real_text}"
        lines.append(f"{name:<21}" + "".join(cells) + ranks)
    for name, scores in report["teacher_flow_epe"].items():
        lines.append(
            f"teacher {name}: EPE {scores['epe']:.3f} px, >3px {scores['outliers_3px']:.3%} "
            f"(zero flow EPE {scores['zero_flow_epe']:.3f} px)"
        )
    return "\n".join(lines)


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate and print the table (or JSON)."""
    args = build_parser().parse_args(argv)
    report = evaluate(args)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
