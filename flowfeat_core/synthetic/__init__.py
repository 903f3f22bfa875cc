"""Procedural labeled benchmark: photo-textured planar layers under camera motion, rendered with
exact depth, class and instance masks and forward optical flow."""

from flowfeat_core.synthetic.benchmark import SyntheticSequence, generate_sequence, generate_split
from flowfeat_core.synthetic.render import RenderedFrame
from flowfeat_core.synthetic.textures import CLASS_COLORS, CLASS_NAMES

__all__ = [
    "CLASS_COLORS",
    "CLASS_NAMES",
    "RenderedFrame",
    "SyntheticSequence",
    "generate_sequence",
    "generate_split",
]
