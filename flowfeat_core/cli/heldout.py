"""``flowfeat_heldout`` (``python -m flowfeat_core.cli.heldout``): distillation loss and
flow-reconstruction EPE of a model on held-out data, next to the same encoder with an untrained
decoder."""

from __future__ import annotations

import argparse
import sys

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.data.sources import build_frame_sequences
from flowfeat_core.hub.loading import load_model
from flowfeat_core.training.heldout import CROP_PROTOCOLS, evaluate_heldout, heldout_batches


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """Print one line of scores for the model and one for its untrained decoder."""
    parser = argparse.ArgumentParser(prog="flowfeat_heldout", description=__doc__)
    parser.add_argument("--model", required=True, help="model source, as for load_model")
    parser.add_argument("--bags", nargs="+", default=[])
    parser.add_argument("--videos", nargs="+", default=[])
    parser.add_argument("--images", nargs="+", default=[])
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--max-side", type=int, default=192)
    parser.add_argument("--max-pairs", type=int, default=200)
    parser.add_argument("--crops", choices=CROP_PROTOCOLS, default="training", help="see the module doc")
    args = parser.parse_args(argv)
    sequences = build_frame_sequences(args.bags, args.videos, args.images, max_side=args.max_side)
    model = load_model(args.model)
    batches = heldout_batches(sequences, args.input_size, args.crops, args.max_pairs)
    untrained = model.untrained_twin()
    for name, candidate in (("model", model), ("untrained decoder", untrained)):
        scores = evaluate_heldout(candidate, batches, args.input_size)
        print(
            f"{name:18} pairs {scores.pairs}  loss {scores.loss:.4f}  EPE dense {scores.epe_dense:.4f}  "
            f"EPE bilinear encoder {scores.epe_bilinear:.4f}  effective rank "
            f"{scores.features.effective_rank:.1f}  top-3 share {scores.features.top3_share:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
