"""Building blocks of the on-robot recorder: bag sequence, motion gate, disk guard, recovery."""
