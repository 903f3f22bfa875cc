"""``python -m flowfeat_core.synthetic``: write procedural benchmark sequences as bags and/or
folders, and optionally score optical-flow teachers on them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.synthetic.benchmark import SPLITS, generate_split
from flowfeat_core.synthetic.flow_scores import score_teacher
from flowfeat_core.synthetic.writers import write_sequence_bag, write_sequence_folder
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
    parser.add_argument("--format", choices=("bag", "folder", "both"), default="both")
    parser.add_argument(
        "--score-teachers",
        default="",
        help="comma-separated teacher flows to score, e.g. dis,farneback,raft_small",
    )
    return parser


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """Write the sequences; print teacher scores when asked."""
    args = build_parser().parse_args(argv)
    sequences = generate_split(
        args.seed, args.split, args.sequences, height=args.height, width=args.width, frames=args.frames
    )
    for sequence in sequences:
        if args.format in ("bag", "both"):
            write_sequence_bag(sequence, args.out / "bags" / sequence.name)
        if args.format in ("folder", "both"):
            write_sequence_folder(sequence, args.out / "folders" / sequence.name)
    scores = {
        name: score_teacher(make_teacher_flow(name, offline=True), sequences)
        for name in filter(None, args.score_teachers.split(","))
    }
    print(f"wrote {len(sequences)} sequences to {args.out}")
    if scores:
        print(json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
