"""``python -m flowfeat_core.probe {depth,segmentation}``: train a light probe on frozen FlowFeat
features from a robot's own recordings (rosbag2) or from folders, and save it as safetensors.

A held-out fraction of the pairs is scored (depth: AbsRel, RMSE, delta<1.25; segmentation: mIoU,
boundary F) and the metrics are stored in the probe file.

``depth --from-motion`` needs no depth sensor: the labels come from the camera's own motion in
the bags (camera_info for the intrinsics; odometry or /tf, when recorded, for metric scale;
otherwise relative depth). Held out are whole bags (``--val-bags``, else a fraction of them);
``--depth-topic`` then only scores the probe against that depth on the held-out bags.
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
from flowfeat_core.data.bag_reader import find_bags
from flowfeat_core.data.camera_recording import (
    POSE_SOURCES,
    describe_recordings,
    read_camera_recording,
    read_video_recording,
)
from flowfeat_core.data.errors import DataError
from flowfeat_core.data.video_reader import find_videos
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.probes.heads import HEADS
from flowfeat_core.probes.io import save_probe
from flowfeat_core.probes.labeled_data import (
    decode_depth_message,
    decode_label_message,
    iter_folder_pairs,
    read_bag_pairs,
    read_depth_file,
    read_label_file,
)
from flowfeat_core.probes.motion_labels import labels_against_depth, motion_labels
from flowfeat_core.probes.training import FitConfig
from flowfeat_core.probes.workflow import (
    FEATURE_CHOICES,
    default_colors,
    make_spec,
    resolve_model,
    score_on_pairs,
    train_on_pairs,
)
from flowfeat_core.training.teacher_flow import TEACHER_FLOWS, make_teacher_flow


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
    parser.add_argument(
        "--head",
        choices=HEADS,
        default="linear",
        help="linear or mlp: 1x1 convolutions, pixel by pixel; conv: three 3x3 layers and a "
        "scene-wide branch on 4x pooled features, which see the scene's layout (depth and "
        "segmentation)",
    )
    parser.add_argument(
        "--features",
        choices=tuple(FEATURE_CHOICES),
        default="flowfeat",
        help="what the head reads: FlowFeat's dense features, those plus the bilinearly upsampled "
        "encoder features, or the upsampled encoder features alone (the baseline)",
    )
    parser.add_argument(
        "--context",
        action="store_true",
        help="the head also reads the image's mean feature vector and each pixel's position "
        "(scene scale, and the ground plane of a fixed camera)",
    )
    parser.add_argument("--max-stamp-diff-ms", type=float, default=20.0)
    parser.add_argument("--every", type=int, default=1, help="keep every N-th pair")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--steps", type=int,
                        help=f"optimisation steps (default: {FitConfig.steps}, conv head "
                        f"{FitConfig.conv_steps})")
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
    motion = depth.add_argument_group("depth from the camera's motion (no depth sensor)")
    motion.add_argument("--from-motion", action="store_true",
                        help="labels from the bags' own camera motion; --depth-topic, if given, "
                             "only scores the held-out bags")
    motion.add_argument("--videos", nargs="+", default=[],
                        help="also train on moving-camera video files (PATH or PATH@START:STOP); "
                        "relative depth only, with --video-fov-deg assumed")
    motion.add_argument("--video-fov-deg", type=float, default=60.0,
                        help="horizontal field of view assumed for --videos")
    motion.add_argument("--val-bags", nargs="+", default=[],
                        help="held-out bags (default: --val-fraction of the --bags)")
    motion.add_argument("--camera-info-topic", help="default: camera_info beside the image topic")
    motion.add_argument("--odometry-topic",
                        help="nav_msgs/Odometry topic (default: the bag's only one, else /tf)")
    motion.add_argument("--poses", choices=POSE_SOURCES, default="auto",
                        help="'none' ignores odometry and /tf (relative depth)")
    motion.add_argument("--teacher", choices=tuple(TEACHER_FLOWS), default="dis",
                        help="optical flow the depth is triangulated from")
    motion.add_argument("--max-side", type=int, default=320,
                        help="frames are resized to this longer side for the flow")
    segmentation = tasks.add_parser("segmentation", help="semantic segmentation probe")
    _add_common(segmentation, "labels")
    segmentation.add_argument(
        "--class-names", required=True, help="comma-separated names of class ids 0..K-1"
    )
    segmentation.add_argument(
        "--class-colors", default="", help="semicolon-separated r,g,b per class (default: a fixed palette)"
    )
    return parser


def _fit_config(args: argparse.Namespace) -> FitConfig:
    """The probe's optimisation: --steps replaces the default of the chosen head."""
    if args.steps is not None and args.steps < 1:
        raise DataError(f"--steps must be >= 1, got {args.steps}")
    return FitConfig.with_steps(args.steps, args.seed)


def _load_pairs(args: argparse.Namespace, target: str, bags: list | None = None,
                every: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Labelled pairs from ``bags`` (default: --bags) or the folders, every ``every``-th."""
    topic = getattr(args, f"{target}_topic")
    folder = getattr(args, target)
    bags = bags if bags is not None else args.bags
    if bags:
        if not args.image_topic or not topic:
            raise DataError(f"--bags needs --image-topic and --{target}-topic")
        decode = decode_depth_message if target == "depth" else decode_label_message
        pairs = read_bag_pairs(bags, args.image_topic, topic, decode, int(args.max_stamp_diff_ms * 1e6))
    elif args.images and folder:
        read = read_depth_file if target == "depth" else read_label_file
        pairs = list(iter_folder_pairs(args.images, folder, read))
    else:
        raise DataError(f"give either --bags with topics, or --images and --{target} folders")
    return pairs[:: max(1, every or args.every)]


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


def _bags_and_held_out(bags: list[str], val_bags: list[str]) -> tuple[list[Path], list[Path]]:
    """--bags without the --val-bags, and the --val-bags; both must be non-empty."""
    if not bags:
        raise DataError("--val-bags needs --bags")
    held_out = find_bags(val_bags)
    train = [bag for bag in find_bags(bags) if bag not in held_out]
    if not train:
        raise DataError("every bag given is in --val-bags: nothing is left to train on")
    return train, held_out


def _motion_split(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """(training bags, held-out bags): --val-bags, else a seeded --val-fraction of the bags."""
    if args.val_bags:
        return _bags_and_held_out(args.bags, args.val_bags)
    bags = find_bags(args.bags)
    if len(bags) < 2:
        raise DataError("--from-motion holds out whole bags: give at least 2 bags, or --val-bags")
    order = np.random.default_rng(args.seed).permutation(len(bags))
    count = min(len(bags) - 1, max(1, round(len(bags) * args.val_fraction)))
    return [bags[i] for i in sorted(order[count:])], [bags[i] for i in sorted(order[:count])]


def run_from_motion(args: argparse.Namespace) -> dict:
    """Train a depth probe on labels from the bags' own camera motion (module doc)."""
    if not args.bags:
        raise DataError("--from-motion needs --bags")
    if args.videos and not args.relative:
        raise DataError("--videos have no odometry: train a --relative probe")
    train_bags, val_bags = _motion_split(args)
    read = partial(read_camera_recording, image_topic=args.image_topic,
                   camera_info_topic=args.camera_info_topic, odometry_topic=args.odometry_topic,
                   poses=args.poses, max_side=args.max_side)
    teacher = make_teacher_flow(args.teacher, offline=True)
    train_recordings = [read(bag) for bag in train_bags] + [
        read_video_recording(span, args.video_fov_deg, args.max_side)
        for span in find_videos(args.videos)]
    val_recordings = [read(bag) for bag in val_bags]
    metric = not args.relative
    train_labels = motion_labels(train_recordings, teacher, args.every, metric=metric)
    val_labels = motion_labels(val_recordings, teacher, args.every, metric=train_labels.metric)
    model, model_info = resolve_model(args.model)
    predictor = Predictor(model, device=args.device, input_short_side=args.input_short_side)
    spec_for = partial(make_spec, "depth", args.head, args.features, metric=train_labels.metric,
                       context=args.context)
    probe = train_on_pairs(predictor, train_labels.pairs, spec_for, args.pixels_per_image,
                           _fit_config(args))
    probe.model_info = model_info
    probe.metrics = {
        "labels": "motion (metric)" if train_labels.metric else "motion (relative)",
        "recordings": describe_recordings(train_recordings),
        "train_labels": train_labels.summary(),
        "validation_labels": val_labels.summary(),
        "validation": score_on_pairs(probe, predictor, val_labels.pairs),
        "train_images": len(train_labels.pairs),
        "validation_images": len(val_labels.pairs),
    }
    if args.depth_topic:
        exact = read_bag_pairs(val_bags, args.image_topic or train_recordings[0].topic,
                               args.depth_topic, decode_depth_message,
                               int(args.max_stamp_diff_ms * 1e6))
        probe.metrics["validation_depth_topic"] = score_on_pairs(probe, predictor, exact)
        probe.metrics["validation_labels_vs_depth_topic"] = labels_against_depth(
            val_labels, args.depth_topic, int(args.max_stamp_diff_ms * 1e6))
        if probe.metric:
            probe.metrics["validation_depth_topic_median_scaled"] = score_on_pairs(
                probe, predictor, exact, median_scale=True)
    save_probe(args.out, probe)
    return probe.metrics


def _exact_split(args: argparse.Namespace) -> tuple[list, list]:
    """Labelled pairs split into training and held-out: by --val-bags when given."""
    if not getattr(args, "val_bags", None):
        return _split(_load_pairs(args, "depth"), args.val_fraction, args.seed)
    train_bags, held_out = _bags_and_held_out(args.bags, args.val_bags)
    return _load_pairs(args, "depth", train_bags), _load_pairs(args, "depth", held_out, every=1)


def run(args: argparse.Namespace) -> dict:
    """Train, score and save the probe; returns its metrics."""
    if getattr(args, "from_motion", False):
        return run_from_motion(args)
    target = "depth" if args.task == "depth" else "labels"
    names = [name.strip() for name in args.class_names.split(",")] if args.task == "segmentation" else []
    colors = _parse_colors(args.class_colors, len(names)) if names else []
    if args.task == "depth":
        train_pairs, val_pairs = _exact_split(args)
    else:
        train_pairs, val_pairs = _split(_load_pairs(args, target), args.val_fraction, args.seed)
    model, model_info = resolve_model(args.model)
    predictor = Predictor(model, device=args.device, input_short_side=args.input_short_side)
    spec_for = partial(
        make_spec,
        args.task,
        args.head,
        args.features,
        metric=not getattr(args, "relative", False),
        class_names=names,
        class_colors=colors,
        context=args.context,
    )
    probe = train_on_pairs(
        predictor, train_pairs, spec_for, args.pixels_per_image, _fit_config(args)
    )
    probe.model_info = model_info
    probe.metrics = {
        "validation": score_on_pairs(probe, predictor, val_pairs),
        "train_images": len(train_pairs),
        "validation_images": len(val_pairs),
    }
    if args.task == "depth" and probe.metric:
        probe.metrics["validation_median_scaled"] = score_on_pairs(probe, predictor, val_pairs,
                                                                   median_scale=True)
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
