"""Decoders turning multi-scale encoder maps into dense, channel-normalised features."""
