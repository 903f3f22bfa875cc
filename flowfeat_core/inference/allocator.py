"""Keep freed memory inside the process, so per-frame tensors reuse pages that are already mapped.

Why: glibc's malloc serves blocks above its mmap threshold (at most 32 MiB; a 128 x 240 x 320
float32 feature map is 39 MB) with a fresh ``mmap`` and unmaps them on ``free``, so the kernel
zero-fills every page again on the next frame. Measured on the 2-core development machine: a
39 MB tensor copy took 16.6 ms into new memory and 2.1 ms into retained memory, and the default
model's fp32 forward at 320x240 went from 72-82 ms to 30-40 ms (README, Benchmarks). PyTorch has
no caching allocator on the CPU, so the fix is malloc's: serve every block from the heap
(``M_MMAP_MAX`` 0) and keep up to ``TRIM_THRESHOLD`` of free memory at its top instead of
returning it. The resident
size then stays near the process's peak instead of falling between frames, which is what a
process that runs the same network every frame needs anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Free memory the heap may keep at its top before returning it to the kernel.
TRIM_THRESHOLD = 1 << 30


@functools.cache
def retain_freed_memory() -> bool:
    """Apply the policy above once per process; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt, and no such mmap policy either
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
