"""Which allocator the measured program runs under, and the state Magneton measures it in.

glibc malloc adapts its mmap threshold to the largest mmapped block freed so far
(up to a ceiling of 32 MiB on 64-bit) and sets the trim threshold to twice that;
the heap top is given back to the kernel when its free space passes the trim
threshold, and page-faulted in again on the next call. The threshold is a
ratchet: it only rises. In a fresh process it sits wherever the first frees left
it, and which state a program then settles in is a lottery: 12 fresh processes of
TinyGPT's forward loop, without Magneton, one thread, no ASLR, fixed hash seed,
settled at 0 to 3,968 page faults per call (CPU time per call 49 to 72 ms). A
long-running process reaches the ratchet's stop as soon as it frees any block
near the ceiling (a loaded file, a batch, a checkpoint tensor).

Three modes (``--allocator``):

* ``settled`` (default): glibc's own defaults, ratchet taken to its stop by
  ``settle_allocator()`` (one block just under the ceiling allocated and freed, as
  a long-running process does). Nothing is fixed: larger temporaries are still
  mmapped and faulted in on every call, and a heap top past 64 MiB free is still
  trimmed. Two analyses then measure the same allocator state.
* ``process``: the process exactly as found, for short-lived programs whose
  users run them in fresh processes (two analyses may land in different states).
* ``steady``: ``steady_allocator()`` fixes both thresholds (the mmap threshold at glibc's
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

from magneton.measure.options import Allocator

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD_BYTES = 2**30
# A block whose chunk (request + header, rounded to pages) stays at or under glibc's ceiling: a larger one is
# mmapped and freed without moving the threshold at all.
SETTLE_BLOCK_BYTES = MMAP_THRESHOLD_BYTES - 64 * 2**10


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """The process's C library on Linux glibc, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@lru_cache(maxsize=1)
def steady_allocator() -> str | None:
    """Fix glibc malloc's thresholds for the rest of the process; say what was done, or None off glibc."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
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


@lru_cache(maxsize=1)
def settle_allocator() -> str | None:
    """Take glibc's adaptive thresholds to where a long-running process ends up; say what was done, or None.

    Only under glibc with its defaults: a preloaded allocator, or thresholds set through the environment (which
    turn glibc's adaptation off), are measured as they are.
    """
    libc = _libc()
    if libc is None or preloaded_allocator() is not None or _glibc_tuning():
        return None
    malloc, free = libc.malloc, libc.free
    malloc.argtypes, malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
    free.argtypes, free.restype = [ctypes.c_void_p], None
    block = malloc(SETTLE_BLOCK_BYTES)  # never touched: mapped, not faulted in
    if not block:
        return None
    free(block)
    return (
        f"settled: one {SETTLE_BLOCK_BYTES / 2**20:.2f} MiB block allocated and freed took glibc's adaptive mmap "
        f"threshold to its {MMAP_THRESHOLD_BYTES >> 20} MiB ceiling (trim threshold {2 * MMAP_THRESHOLD_BYTES >> 20}"
        " MiB), where a long-running process ends up; --allocator process measures the process as found"
    )


def apply_allocator(mode: Allocator) -> str | None:
    """Put this process's allocator in the state ``mode`` measures; what was done, for the report, or None."""
    if mode == "steady":
        return steady_allocator()
    if mode == "settled":
        return settle_allocator()
    return None


_PRELOADED = (("jemalloc", "jemalloc"), ("tcmalloc", "tcmalloc"), ("mimalloc", "mimalloc"))
GLIBC_TUNING_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def _glibc_tuning() -> list[str]:
    """glibc malloc settings from the environment (``NAME=value``); any of them turns its adaptation off."""
    return [f"{name}={os.environ[name]}" for name in GLIBC_TUNING_ENV if name in os.environ]


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
    settings = _glibc_tuning()
    if settings:
        return f"glibc malloc {platform.libc_ver()[1]} with {', '.join(settings)}"
    return (
        f"glibc malloc {platform.libc_ver()[1]} with default thresholds (mmap threshold adapts from 128 KiB, "
        "heap top trimmed past 128 KiB free)"
    )
