"""``flowfeat_export``: write a FlowFeat model as ONNX and check ONNX Runtime against PyTorch.

    flowfeat_export --checkpoint default --out flowfeat.onnx --height 240 --width 320
    flowfeat_export --checkpoint run/flowfeat.safetensors --out dyn.onnx --dynamic
    flowfeat_export --checkpoint dino2_s14_flowfeat_yt --precision fp16 --out vit16.onnx

The check runs both on a real photo (scikit-image's astronaut) at the export size (and, for a
``--dynamic`` graph, at a second size) and prints the largest absolute and relative error of each
output; above ``--tolerance``, or when the graph does not run at the second size, the file is
kept for inspection but the program fails (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.export.onnx_export import ExportError, export_onnx, verify_onnx
from flowfeat_core.inference.numerics import ONNX_PRECISIONS, TOLERANCE


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="flowfeat_export", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="default",
                   help="anything load_model accepts: 'default', a .safetensors, an official .pth "
                        "or a released weights name")
    p.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--height", type=int, default=0, help="export height (0: from the model's "
                   "preferred short side at 4:3, rounded to its size multiple)")
    p.add_argument("--width", type=int, default=0, help="export width (see --height)")
    p.add_argument("--dynamic", action="store_true",
                   help="symbolic batch, height and width (multiples of the size multiple)")
    p.add_argument("--precision", choices=ONNX_PRECISIONS, default="fp32")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest accepted relative error (default "
                        f"{ {name: TOLERANCE[name] for name in ONNX_PRECISIONS} })")
    return p


@reports_user_errors
def main(argv: list[str] | None = None) -> int:
    """Export, verify, print the numbers; 1 when the check fails."""
    args = parser().parse_args(argv)
    import numpy as np
    from skimage import data as skimage_data

    from flowfeat_core.hub.loading import load_model
    from flowfeat_core.inference.predictor import Predictor

    model = load_model(args.checkpoint)
    height, width = args.height, args.width
    if not height or not width:
        short = model.config.input_short_side
        height, width = model.padded_hw((short, round(short * 4 / 3)))
    path = export_onnx(model, args.out, height, width, args.precision, args.dynamic)
    print(f"wrote {path} ({args.precision}, {'dynamic' if args.dynamic else f'{height}x{width}'})")
    photo = np.ascontiguousarray(skimage_data.astronaut())
    sizes = [(height, width)]
    if args.dynamic:  # a graph that only looks dynamic (a ViT's position embeddings) fails here
        sizes.append((height + 2 * model.size_multiple, width + model.size_multiple))
    for size in sizes:
        images = Predictor(model, device="cpu", input_hw=size).preprocess(photo).cpu()
        result = verify_onnx(model, path, images, args.tolerance)
        print(f"ONNX Runtime vs PyTorch fp32 at {size[0]}x{size[1]}: {result.summary()}")
        if not result.passed:
            raise ExportError(f"verification failed: {result.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
