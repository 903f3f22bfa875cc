"""Light probes (depth, segmentation) on frozen FlowFeat features, label propagation and metrics."""
