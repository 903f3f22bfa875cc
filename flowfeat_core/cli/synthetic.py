"""``python -m flowfeat_core.synthetic``: write procedural moving-camera sequences as rosbag2
bags and/or folders, and optionally score optical-flow teachers on them against the exact flow.

Two uses: the labeled benchmark (``--textures benchmark``, the default), and the distillation
training corpus (``--textures training --photometric --no-labels``: textures the benchmark never
uses, camera nuisances, colour topic only, as a robot records it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.synthetic.benchmark import SPLITS, generate_sequence
from flowfeat_core.synthetic.flow_scores import score_teacher
from flowfeat_core.synthetic.textures import TEXTURE_POOLS
from flowfeat_core.synthetic.writers import POSE_FORMATS, write_sequence_bag, write_sequence_folder
from flowfeat_core.training.teacher_flow import make_teacher_flow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flowfeat_core.synthetic", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=sorted(SPLITS), default="train")
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--max-objects", type=int, default=4, help="independently moving objects (2..N)")
    parser.add_argument(
        "--textures", choices=TEXTURE_POOLS, default="benchmark", help="photo pool (disjoint pools)"
    )
    parser.add_argument(
        "--photometric", action="store_true", help="exposure/white-balance drift, blur, noise, JPEG"
    )
    parser.add_argument("--no-labels", dest="labels", action="store_false", help="bags: colour topic only")
    parser.add_argument("--format", choices=("bag", "folder", "both"), default="both")
    parser.add_argument("--poses", choices=POSE_FORMATS, default="none",
                        help="bags: also record the camera's motion, as nav_msgs/Odometry (with the "
                        "camera's mount on /tf_static) or on /tf")
    parser.add_argument(
        "--score-teachers",
        default="",
        help="comma-separated teacher flows to score, e.g. dis,farneback,raft_small",
    )
    return parser


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """Write the sequences; print teacher scores when asked."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("sequences", "frames", "max_objects"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    settings = {
        "height": args.height,
        "width": args.width,
        "frames": args.frames,
        "max_objects": args.max_objects,
        "textures": args.textures,
        "photometric": args.photometric,
    }
    sequences = []
    for index in range(args.sequences):
        sequence = generate_sequence(args.seed, index, args.split, **settings)
        if args.format in ("bag", "both"):
            write_sequence_bag(sequence, args.out / "bags" / sequence.name, labels=args.labels,
                               poses=args.poses)
        if args.format in ("folder", "both"):
            write_sequence_folder(sequence, args.out / "folders" / sequence.name)
        if args.score_teachers:
            sequences.append(sequence)
    scores = {
        name: score_teacher(make_teacher_flow(name, offline=True), sequences)
        for name in filter(None, args.score_teachers.split(","))
    }
    print(f"wrote {args.sequences} sequences to {args.out}")
    if scores:
        print(json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
