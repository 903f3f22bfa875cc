"""Procedural labeled benchmark: photo-textured planar layers under camera motion, rendered with
exact depth, class and instance masks and forward optical flow."""
