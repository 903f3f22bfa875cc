"""Light probes (depth, segmentation) on frozen FlowFeat features, label propagation and metrics."""

from flowfeat_core.probes.heads import Probe, ProbeSpec
from flowfeat_core.probes.io import ProbeError, load_probe, save_probe

__all__ = ["Probe", "ProbeError", "ProbeSpec", "load_probe", "save_probe"]
