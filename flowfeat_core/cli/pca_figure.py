"""``python -m flowfeat_core.cli.pca_figure --model default --out docs/pca_comparison.png``: one row
per real image (photos and frames of the real-image yardstick's report split, which no training
run or setting choice used: a stereo scene, frames of a hand-held and of an in-car moving camera,
and two photos): input | FlowFeat PCA | untrained decoder PCA | hypercolumn PCA | bilinear encoder
PCA, each PCA fitted on that image's features; prints each row's effective rank per feature set."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from flowfeat_core.cli.errors import reports_user_errors
from flowfeat_core.data.real_video import read_clip
from flowfeat_core.inference.feature_stats import feature_stats
from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.probes.baselines import FeatureSets
from flowfeat_core.probes.real_images import read_photo
from flowfeat_core.probes.real_yardstick import YARDSTICK, load_stereo
from flowfeat_core.probes.workflow import resolve_model
from flowfeat_core.synthetic.textures import OPENCV_DATA, SKIMAGE_DATA
from flowfeat_core.training.visuals import features_to_rgb

COLUMNS = ("flowfeat", "untrained", "hypercolumn", "bilinear")
ROW_HEIGHT = 180


def figure_images() -> dict[str, np.ndarray]:
    """The figure's rows: name -> RGB image."""
    bikes, carphone = (replace(clip, start=clip.start + 30) for clip in YARDSTICK["report"].clips)
    return {
        "motorcycle": load_stereo("motorcycle")[0],
        f"bikes#{bikes.start}": read_clip(bikes, max_frames=1)[0],
        f"carphone#{carphone.start}": read_clip(carphone, max_frames=1)[0],
        "fruits": read_photo(OPENCV_DATA / "fruits.jpg"),
        "astronaut": read_photo(SKIMAGE_DATA / "astronaut.png"),
    }


def _fit_height(image: np.ndarray, width: int) -> np.ndarray:
    return cv2.resize(image, (width, ROW_HEIGHT), interpolation=cv2.INTER_AREA)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    labelled = tile.copy()
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    (width, height), _ = cv2.getTextSize(text, font, scale, 1)
    cv2.rectangle(labelled, (0, 0), (width + 8, height + 10), (0, 0, 0), -1)
    cv2.putText(labelled, text, (4, height + 4), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return labelled


def render_figure(sets: FeatureSets, images: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """The RGB figure and, per row, the effective rank of each column's features."""
    rows, ranks = [], {}
    for name, image in images.items():
        maps = sets.maps(image)
        width = round(ROW_HEIGHT * image.shape[1] / image.shape[0])
        tiles = [_label(_fit_height(image, width), name)]
        ranks[name] = {}
        for column in COLUMNS:
            ranks[name][column] = feature_stats(maps[column]).effective_rank
            picture = features_to_rgb(maps[column][0])
            tiles.append(_label(_fit_height(picture, width), f"{column} (rank {ranks[name][column]:.0f})"))
        rows.append(np.concatenate(tiles, axis=1))
    widest = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, 0), (0, widest - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    return np.concatenate(padded, axis=0), ranks


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """Write the figure and print the ranks."""
    parser = argparse.ArgumentParser(prog="python -m flowfeat_core.cli.pca_figure", description=__doc__)
    parser.add_argument("--model", default="default", help="model source, as for load_model")
    parser.add_argument("--out", type=Path, default=Path("docs/pca_comparison.png"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model, _ = resolve_model(args.model)
    sets = FeatureSets.for_predictor(Predictor(model, device=args.device))
    figure, ranks = render_figure(sets, figure_images())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {args.out}")
    for name, values in ranks.items():
        print(f"{name:<10} " + "  ".join(f"{column} rank {value:5.1f}" for column, value in values.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
