"""``python -m flowfeat_core.probe {depth,segmentation}``: train a light probe on frozen FlowFeat
features from a robot's own recordings (rosbag2) or from folders, and save it as safetensors.

A held-out fraction of the pairs is scored (depth: AbsRel, RMSE, delta<1.25; segmentation: mIoU,
boundary F) and the metrics are stored in the probe file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.data.errors import DataError
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.probes.io import save_probe
from flowfeat_core.probes.labeled_data import (
    decode_depth_message,
    decode_label_message,
    iter_folder_pairs,
    read_bag_pairs,
    read_depth_file,
    read_label_file,
)
from flowfeat_core.probes.training import FitConfig
from flowfeat_core.probes.workflow import (
    default_colors,
    make_spec,
    resolve_model,
    score_on_pairs,
    train_on_pairs,
)


def _add_common(parser: argparse.ArgumentParser, target: str) -> None:
    source = parser.add_argument_group("data (bags or folders)")
    source.add_argument("--bags", nargs="+", help="rosbag2 bags or folders of bags")
    source.add_argument("--image-topic", help="colour image topic in the bags")
    source.add_argument(f"--{target}-topic", help=f"{target} topic in the bags, paired by header stamp")
    source.add_argument("--images", type=Path, help="folder of colour images")
    source.add_argument(f"--{target}", type=Path, help=f"folder of {target} files named like the images")
    parser.add_argument(
        "--model",
        default="default",
        help="FlowFeat model: 'default', a .safetensors/.pth checkpoint, a released name, "
        "or 'embedded-untrained'",
    )
    parser.add_argument("--out", type=Path, required=True, help="probe file to write (.safetensors)")
    parser.add_argument("--head", choices=("linear", "mlp"), default="linear")
    parser.add_argument(
        "--concat-encoder",
        action="store_true",
        help="also feed the bilinearly upsampled encoder features to the head",
    )
    parser.add_argument("--max-stamp-diff-ms", type=float, default=20.0)
    parser.add_argument("--every", type=int, default=1, help="keep every N-th pair")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=FitConfig.steps)
    parser.add_argument("--pixels-per-image", type=int, default=1024)
    parser.add_argument("--input-short-side", type=int, default=0,
                        help="network input short side (0: the model's preferred size)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flowfeat_core.probe", description=__doc__)
    tasks = parser.add_subparsers(dest="task", required=True)
    depth = tasks.add_parser("depth", help="depth probe (scale-invariant log loss)")
    _add_common(depth, "depth")
    depth.add_argument(
        "--relative",
        action="store_true",
        help="train for relative depth (fully scale invariant; scored after median scaling)",
    )
    segmentation = tasks.add_parser("segmentation", help="semantic segmentation probe")
    _add_common(segmentation, "labels")
    segmentation.add_argument(
        "--class-names", required=True, help="comma-separated names of class ids 0..K-1"
    )
    segmentation.add_argument(
        "--class-colors", default="", help="semicolon-separated r,g,b per class (default: a fixed palette)"
    )
    return parser


def _load_pairs(args: argparse.Namespace, target: str) -> list[tuple[np.ndarray, np.ndarray]]:
    topic = getattr(args, f"{target}_topic")
    folder = getattr(args, target)
    if args.bags:
        if not args.image_topic or not topic:
            raise DataError(f"--bags needs --image-topic and --{target}-topic")
        decode = decode_depth_message if target == "depth" else decode_label_message
        pairs = read_bag_pairs(args.bags, args.image_topic, topic, decode, int(args.max_stamp_diff_ms * 1e6))
    elif args.images and folder:
        read = read_depth_file if target == "depth" else read_label_file
        pairs = list(iter_folder_pairs(args.images, folder, read))
    else:
        raise DataError(f"give either --bags with topics, or --images and --{target} folders")
    return pairs[:: max(1, args.every)]


def _parse_colors(text: str, count: int) -> list[tuple[int, int, int]]:
    if not text:
        return default_colors(count)
    colors = [tuple(int(value) for value in item.split(",")) for item in text.split(";")]
    if len(colors) != count or any(len(color) != 3 for color in colors):
        raise ValueError(f"--class-colors needs {count} 'r,g,b' entries separated by ';'")
    return colors


def _split(pairs: list, fraction: float, seed: int) -> tuple[list, list]:
    if len(pairs) < 2:
        raise DataError(f"need at least 2 labelled pairs (training and validation), got {len(pairs)}")
    order = np.random.default_rng(seed).permutation(len(pairs))
    held_out = min(len(pairs) - 1, max(1, round(len(pairs) * fraction)))
    return [pairs[i] for i in order[held_out:]], [pairs[i] for i in order[:held_out]]


def run(args: argparse.Namespace) -> dict:
    """Train, score and save the probe; returns its metrics."""
    target = "depth" if args.task == "depth" else "labels"
    names = [name.strip() for name in args.class_names.split(",")] if args.task == "segmentation" else []
    colors = _parse_colors(args.class_colors, len(names)) if names else []
    train_pairs, val_pairs = _split(_load_pairs(args, target), args.val_fraction, args.seed)
    model, model_info = resolve_model(args.model)
    predictor = Predictor(model, device=args.device, input_short_side=args.input_short_side)
    choice = "flowfeat+encoder" if args.concat_encoder else "flowfeat"
    spec_for = partial(
        make_spec,
        args.task,
        args.head,
        choice,
        metric=not getattr(args, "relative", False),
        class_names=names,
        class_colors=colors,
    )
    probe = train_on_pairs(
        predictor, train_pairs, spec_for, args.pixels_per_image, FitConfig(steps=args.steps, seed=args.seed)
    )
    probe.model_info = model_info
    probe.metrics = {
        "validation": score_on_pairs(probe, predictor, val_pairs),
        "train_images": len(train_pairs),
        "validation_images": len(val_pairs),
    }
    save_probe(args.out, probe)
    return probe.metrics


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """Train, score and save a probe; print its metrics as JSON."""
    args = build_parser().parse_args(argv)
    metrics = run(args)
    print(json.dumps({"probe": str(args.out), **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
