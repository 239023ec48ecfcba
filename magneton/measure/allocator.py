"""Which allocator the measured program runs under, and pinning glibc's (only when asked).

glibc malloc adapts its mmap threshold to the largest block freed so far and
gives memory back to the kernel when the free space at the heap top passes a
trim threshold. A user's process runs with these defaults, and there large
temporaries are trimmed and page-faulted in again on every call, in steady
state too. That cost is real, so by default Magneton measures under the
allocator the process has and reports its page faults.

``steady_allocator()`` fixes both thresholds (the mmap threshold at glibc's
64-bit maximum, trimming practically off). It makes whole-pass energy
independent of the allocator's history, but it is *not* the state a
long-running default process reaches: it removes the trim-and-refault cycle
users pay. It is kept for studies (``--allocator steady``) and for measuring
the allocator as a configuration knob (``magneton.measure.allocator_knob``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
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


_PRELOADED = (("jemalloc", "jemalloc"), ("tcmalloc", "tcmalloc"), ("mimalloc", "mimalloc"))
GLIBC_TUNING_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def preloaded_allocator() -> str | None:
    """jemalloc/tcmalloc/mimalloc when the process runs with one (LD_PRELOAD or linked), else None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            text = maps.read()
    except OSError:
        text = os.environ.get("LD_PRELOAD", "")
    for name, marker in _PRELOADED:
        if f"lib{marker}" in text:
            return name
    return None


@lru_cache(maxsize=1)
def describe_allocator() -> str:
    """Which allocator this process uses, with the settings that decide its page faults."""
    other = preloaded_allocator()
    if other is not None:
        return f"{other} (loaded into the process, e.g. through LD_PRELOAD)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return f"the platform allocator ({platform.system()})"
    settings = [f"{name}={os.environ[name]}" for name in GLIBC_TUNING_ENV if name in os.environ]
    if settings:
        return f"glibc malloc {platform.libc_ver()[1]} with {', '.join(settings)}"
    return (
        f"glibc malloc {platform.libc_ver()[1]} with default thresholds (mmap threshold adapts from 128 KiB, "
        "heap top trimmed past 128 KiB free)"
    )
