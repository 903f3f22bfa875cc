"""``flowfeat_export_default CHECKPOINT``: make a trained checkpoint the shipped default decoder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.hub.checkpoint import load_checkpoint, read_checkpoint_metadata
from flowfeat_core.hub.embedded import EMBEDDED_DECODER, save_embedded_decoder


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """Copy the decoder and provenance of CHECKPOINT into the package's embedded default."""
    parser = argparse.ArgumentParser(prog="flowfeat_export_default", description=__doc__)
    parser.add_argument("checkpoint", type=Path, help="a .safetensors checkpoint with the embedded encoder")
    parser.add_argument("--out", type=Path, default=EMBEDDED_DECODER)
    parser.add_argument("--decoder-edge-radius", type=int,
                        help="ship the decoder with this edge-aware smoothing radius (0 = off; "
                        "default: the checkpoint's own; README, 'Edge-aware smoothing')")
    args = parser.parse_args(argv)
    _, provenance = read_checkpoint_metadata(args.checkpoint)
    model = load_checkpoint(args.checkpoint)
    if args.decoder_edge_radius is not None:
        model = model.with_edge_filter(args.decoder_edge_radius)
    print(save_embedded_decoder(model, provenance, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
