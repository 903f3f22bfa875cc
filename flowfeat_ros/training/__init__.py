"""The on-robot trainer (node.py) over flowfeat_core.continual, and its link to the perception node."""
