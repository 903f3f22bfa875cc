"""The perception node's /diagnostics contract: the kind in its status name and the keys other
nodes act on (the trainer's PerceptionLink, the stream monitor). Both sides import these names,
so renaming a key cannot silently break the on-robot loop."""

from __future__ import annotations

#: The status is named ``<node's fully qualified name>: perception``.
STATUS_KIND = "perception"
PROCESSED_FRAMES = "processed_frames"
RECEIVED_FRAMES = "received_frames"
STAMP_LATENCY = "latency_stamp_ms"
STAMP_LATENCY_MEDIAN = f"{STAMP_LATENCY}_median"
CHECKPOINT = "checkpoint"
LAST_LOAD_ERROR = "last_load_error"
