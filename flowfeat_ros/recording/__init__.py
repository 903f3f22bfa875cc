"""The on-robot recorder (node.py) and its parts: bag sequence, motion gate, disk guard, recovery."""
