"""``python -m flowfeat_core.evaluate --model CKPT``: score FlowFeat features on held-out procedural
sequences against the bilinearly upsampled encoder features (the baseline), with the same probes:
depth probe, segmentation probe and label-propagation J&F; plus trivial baselines and the
end-point error of the optical-flow teachers. Prints one table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.probes.metrics import DepthMetrics, SegmentationMetrics
from flowfeat_core.probes.propagation import PropagationConfig, jf_scores, propagate_labels
from flowfeat_core.probes.training import (
    FitConfig,
    PixelSamples,
    features_of,
    fit_probe,
    predict_map,
    probe_inputs,
)
from flowfeat_core.probes.workflow import make_spec, resolve_model, score_prediction
from flowfeat_core.synthetic.benchmark import SyntheticSequence, generate_split
from flowfeat_core.synthetic.flow_scores import score_teacher
from flowfeat_core.synthetic.textures import CLASS_COLORS, CLASS_NAMES
from flowfeat_core.training.teacher_flow import make_teacher_flow, raft_weights_path

FEATURES = ("flowfeat", "bilinear")


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
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _features(predictor: Predictor, sequence: SyntheticSequence) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [features_of(predictor, frame.rgb) for frame in sequence.frames]


def _train_probes(predictor: Predictor, sequences: list[SyntheticSequence], args: argparse.Namespace) -> dict:
    """Depth and segmentation probes for each feature choice, trained on the same pixels."""
    samples: dict[tuple[str, str], PixelSamples] = {}
    specs = {}
    for index, sequence in enumerate(sequences):
        for frame_index, (frame, (dense, encoder)) in enumerate(
            zip(sequence.frames, _features(predictor, sequence), strict=True)
        ):
            for choice in FEATURES:
                for task_index, (task, target) in enumerate(
                    (("depth", frame.depth), ("segmentation", frame.classes))
                ):
                    key = (choice, task)
                    if key not in specs:
                        specs[key] = make_spec(
                            task, args.head, choice, dense, encoder, True, CLASS_NAMES, CLASS_COLORS
                        )
                        samples[key] = PixelSamples(task, args.pixels_per_image)
                    rng = np.random.default_rng([args.seed, index, frame_index, task_index])
                    samples[key].add(probe_inputs(specs[key], dense, encoder), target, rng)
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


def _dense_for_propagation(choice: str, dense: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
    if choice == "flowfeat":
        return dense[0]
    return F.interpolate(encoder, size=dense.shape[-2:], mode="bilinear", align_corners=False)[0]


def _first_frame_objects(sequence: SyntheticSequence) -> tuple[list[np.ndarray], list[int]]:
    """Instance maps restricted to the objects present in the first frame (DAVIS protocol)."""
    objects = [int(i) for i in np.unique(sequence.frames[0].instances) if i]
    keep = np.isin(np.arange(256), objects)
    return [np.where(keep[f.instances], f.instances, 0).astype(np.uint8) for f in sequence.frames], objects


def _score_test(predictor: Predictor, probes: dict, test: list[SyntheticSequence]) -> dict:
    metrics = {
        key: (DepthMetrics() if key[1] == "depth" else SegmentationMetrics(len(CLASS_NAMES)))
        for key in probes
    }
    propagation = {choice: [] for choice in FEATURES}
    for sequence in test:
        features = _features(predictor, sequence)
        for key, probe in probes.items():
            for frame, (dense, encoder) in zip(sequence.frames, features, strict=True):
                target = frame.depth if key[1] == "depth" else frame.classes
                score_prediction(probe, predict_map(probe, dense, encoder), target, metrics[key])
        truth, objects = _first_frame_objects(sequence)
        if not objects:
            continue
        for choice in FEATURES:
            stacked = torch.stack([_dense_for_propagation(choice, d, e) for d, e in features])
            predicted = propagate_labels(stacked, truth[0], int(max(objects)) + 1, PropagationConfig())
            propagation[choice].append(jf_scores(predicted, truth, objects))
    results = {choice: {} for choice in FEATURES}
    for (choice, _), accumulator in metrics.items():
        results[choice].update(accumulator.result())
    for choice, scores in propagation.items():
        for name in ("j", "f", "jf"):
            results[choice][name] = float(np.mean([score[name] for score in scores])) if scores else None
    return results


def _teacher_scores(names: str, test: list[SyntheticSequence]) -> dict:
    chosen = [name for name in names.split(",") if name]
    if "raft_small" not in chosen and raft_weights_path("small").is_file():
        chosen.append("raft_small")
    return {name: score_teacher(make_teacher_flow(name, offline=True), test) for name in chosen}


def evaluate(args: argparse.Namespace) -> dict:
    """Run the whole evaluation; returns the JSON-ready report."""
    size = {"height": args.height, "width": args.width, "frames": args.frames}
    train = generate_split(args.seed, "train", args.train_sequences, **size)
    test = generate_split(args.seed, "test", args.test_sequences, **size)
    model, model_info = resolve_model(args.model)
    predictor = Predictor(model, device=args.device, input_hw=(args.height, args.width))
    probes = _train_probes(predictor, train, args)
    results = _score_test(predictor, probes, test)
    results["trivial"] = _trivial(train, test)
    return {
        "model": model_info["source"],
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "results": results,
        "teacher_flow_epe": _teacher_scores(args.teachers, test),
    }


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


def format_table(report: dict) -> str:
    """The report as aligned text."""
    lines = [
        f"model: {report['model']}  (held-out procedural sequences, {report['settings']['head']} probes)",
        f"{'features':<10}" + "".join(f"{title:>9}" for _, title in COLUMNS),
    ]
    for name, values in report["results"].items():
        cells = [f"{values[k]:9.3f}" if values.get(k) is not None else f"{'-':>9}" for k, _ in COLUMNS]
        lines.append(f"{name:<10}" + "".join(cells))
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
