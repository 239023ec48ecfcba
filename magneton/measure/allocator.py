"""Keeping glibc's allocator in one steady state while energy is measured.

glibc malloc adapts its mmap threshold to the largest block freed so far and
gives memory back to the kernel when the heap top grows past a trim
threshold. Which state a process is in depends on its whole history, so the
same forward pass can take its activations from the heap in one process and
from fresh, page-faulting mmaps in the next: on a 2-core VM that made the
whole-pass energy of one model differ by ~30% between two otherwise equal
runs. Fixing both thresholds (the mmap threshold at glibc's 64-bit maximum,
trimming practically off) puts every run in the steady state a long-running
process reaches, and the report says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from functools import lru_cache

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD_BYTES = 2**30


@lru_cache(maxsize=1)
def steady_allocator() -> str | None:
    """Fix glibc malloc's thresholds for the rest of the process; say what was done, or None off glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        return None
    return (
        f"glibc malloc fixed for this process (mmap threshold {MMAP_THRESHOLD_BYTES >> 20} MiB, "
        f"trim threshold {TRIM_THRESHOLD_BYTES >> 30} GiB) so page faults from allocator state do not vary "
        "between runs"
    )
