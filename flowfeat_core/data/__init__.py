"""Training data: rosbag2 bags, videos and image folders as cached frame sequences and pairs."""

from flowfeat_core.data.errors import DataError
from flowfeat_core.data.frame_cache import default_cache_dir
from flowfeat_core.data.pairs import FramePairDataset
from flowfeat_core.data.sequences import FrameFilter, FrameSequence
from flowfeat_core.data.sources import build_frame_sequences

__all__ = [
    "DataError",
    "FrameFilter",
    "FramePairDataset",
    "FrameSequence",
    "build_frame_sequences",
    "default_cache_dir",
]
