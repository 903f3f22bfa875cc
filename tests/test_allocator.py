"""The malloc policy every node sets at start: a large freed block stays in the process for the next frame
instead of going back to the kernel (glibc; each case in its own process, as the policy is
process-wide)."""

from __future__ import annotations

import subprocess
import sys

# A 40 MB block (above glibc's largest mmap threshold) is allocated and freed; mallinfo2 then
# says how much memory is mmapped while it lives (hblkhd) and how much the heap keeps free
# after it is gone (fordblks).
PROBE = """
import ctypes, sys
import numpy as np
from flowfeat_core.inference.allocator import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "policy":
    assert retain_freed_memory()
block = np.ones(40_000_000, dtype=np.uint8)
mmapped = libc.mallinfo2().hblkhd
del block
print(mmapped, libc.mallinfo2().fordblks)
"""


def probe(mode: str) -> tuple[int, int]:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    mmapped, kept = map(int, result.stdout.split())
    return mmapped, kept


def test_large_freed_blocks_stay_in_the_process_under_the_policy() -> None:
    mmapped, kept = probe("policy")
    assert mmapped < 40_000_000 and kept >= 40_000_000
    mmapped, kept = probe("default")  # what glibc does without it: mmap, then unmap on free
    assert mmapped >= 40_000_000 and kept < 40_000_000
