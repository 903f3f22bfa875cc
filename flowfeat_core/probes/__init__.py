"""Light probes (depth, segmentation) on frozen FlowFeat features, metrics (J&F included)."""
