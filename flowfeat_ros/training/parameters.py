"""The trainer node's parameters: the loop's (flowfeat_core.continual.parameters) plus what only
the node does: waking up, sharing the machine with perception, and keeping perception on the
deployed file. All read-only: restart to change."""

from __future__ import annotations

from dataclasses import dataclass

from flowfeat_core.continual.parameters import LoopParameters
from flowfeat_core.settings import setting


@dataclass(frozen=True)
class TrainerSettings(LoopParameters):
    """Every trainer node parameter, declared once."""

    check_period_s: float = setting(30.0, "how often to look for finished bags", low=0.1,
                                    high=86400.0, read_only=True)
    min_new_bags: int = setting(4, "new training bags that start a round (0 = only "
                                "~/train_now)", low=0, high=10000, read_only=True)
    cpu_threads: int = setting(1, "torch threads for training", low=1, high=256, read_only=True)
    nice: int = setting(10, "raise this process's nice level by this much (0 = unchanged)",
                        low=0, high=19, read_only=True)
    perception_node: str = setting("perception", "the perception node kept on the deployed file "
                                   "(relative: in this node's namespace; '' = none)",
                                   read_only=True)
    max_perception_latency_ms: float = setting(250.0, "pause training while perception's median "
                                               "latency exceeds this (0 = never)", low=0.0,
                                               high=1e6, read_only=True)
    confirm_timeout_s: float = setting(120.0, "wait this long for perception to load a deploy "
                                       "and process frames with it", low=1.0, high=3600.0,
                                       read_only=True)
