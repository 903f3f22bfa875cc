"""Deterministic labeled sequences: the procedural benchmark's and training corpus' entry points.

The benchmark (probes in ``evaluate``) uses the ``benchmark`` texture pool and perfect renders;
the distillation training corpus uses the disjoint ``training`` pool with camera nuisances
(``photometric``), so a model is always scored on textures it was never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowfeat_core.synthetic.photometric import degrade_sequence
from flowfeat_core.synthetic.render import RenderedFrame, render_scene
from flowfeat_core.synthetic.scene import CameraPath, random_scene
from flowfeat_core.synthetic.textures import CLASS_COLORS, CLASS_NAMES

#: Seed-stream tags that keep training and held-out sequences disjoint for one seed.
SPLITS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SyntheticSequence:
    """A rendered sequence with its name, camera (intrinsics and per-frame pose), rendered frames
    and the photos its textures were cut from."""

    name: str
    camera: CameraPath
    frames: list[RenderedFrame]
    texture_sources: frozenset[Path]

    @property
    def intrinsics(self) -> np.ndarray:
        """3x3 pinhole intrinsics."""
        return self.camera.intrinsics

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    @property
    def class_colors(self) -> tuple[tuple[int, int, int], ...]:
        return CLASS_COLORS


def generate_sequence(
    seed: int,
    index: int = 0,
    split: str = "train",
    height: int = 128,
    width: int = 160,
    frames: int = 8,
    max_objects: int = 4,
    textures: str = "benchmark",
    photometric: bool = False,
) -> SyntheticSequence:
    """Sequence ``index`` of ``split`` for ``seed``, textured from pool ``textures``, with camera
    nuisances when ``photometric``: the same arguments always give the same pixels."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    rng = np.random.default_rng([seed, SPLITS[split], index])
    scene = random_scene(rng, height, width, frames, max_objects, textures)
    rendered = render_scene(scene)
    if photometric:
        rendered = degrade_sequence(np.random.default_rng([seed, SPLITS[split], index, 1]), rendered)
    prefix = split if textures == "benchmark" else f"{textures}_{split}"
    return SyntheticSequence(
        f"{prefix}_{seed}_{index:03d}",
        scene.camera,
        rendered,
        frozenset(layer.source for layer in scene.layers),
    )


def generate_split(
    seed: int, split: str, sequences: int, **kwargs: int | str | bool
) -> list[SyntheticSequence]:
    """``sequences`` sequences of ``split`` (see :func:`generate_sequence` for ``kwargs``)."""
    return [generate_sequence(seed, index, split, **kwargs) for index in range(sequences)]
