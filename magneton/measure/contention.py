"""What else happened during a measurement window: page faults, CPU wait, and the rest of the machine.

Read around every window of the energy pass (never inside it):

- page faults of this process (``getrusage``: minor and major), so a node's cost
  of materialising fresh memory is visible instead of hidden in its joules;
- run delay of this process' threads (``/proc/self/task/*/schedstat``, field 2:
  nanoseconds spent runnable but waiting for a CPU). On an oversubscribed
  machine intra-op (OpenMP) threads spin at barriers while a partner thread is
  descheduled, and that spin is counted as this process' CPU time: a window with
  much run delay over-counts energy;
- how busy the other processes kept the machine (``/proc/stat`` busy jiffies,
  less this process' own CPU time), in cores.

Off Linux the readings that need /proc are None and nothing is flagged.
"""

from __future__ import annotations

import functools
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

# A window is contended when its threads waited for a CPU this long per second of window.
# Calibrated on a 2-core VM (tests/bench/bench_contention.py, README "Busy machines"): quiet
# windows show < 0.02 s/s, a busy loop on one core gives 0.1-0.5 s/s.
CONTENDED_RUN_DELAY_S_PER_S = 0.05
# Above this share of contended windows the report warns that the run was measured on a busy machine.
CONTENDED_WINDOWS_WARNING_SHARE = 0.10

_TASKS = Path("/proc/self/task")
_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class Counters:
    """Cumulative counters at one instant."""

    wall_s: float
    cpu_s: float  # this process, all threads
    minor_faults: int
    major_faults: int
    run_delay_ns: int | None  # summed over this process' live threads
    machine_busy_jiffies: int | None
    machine_total_jiffies: int | None


@dataclass(frozen=True)
class WindowStats:
    """The difference of two Counters: what happened during one window."""

    wall_s: float
    minor_faults: int
    major_faults: int
    run_delay_s: float | None
    others_busy_cores: float | None  # CPU cores kept busy by other processes, on average

    @property
    def run_delay_s_per_s(self) -> float | None:
        if self.run_delay_s is None or self.wall_s <= 0:
            return None
        return self.run_delay_s / self.wall_s

    @property
    def contended(self) -> bool:
        ratio = self.run_delay_s_per_s
        # Below a millisecond of wait the scheduler's own granularity dominates.
        return ratio is not None and ratio > CONTENDED_RUN_DELAY_S_PER_S and (self.run_delay_s or 0.0) > 1e-3


def _run_delay_ns() -> int | None:
    try:
        tasks = os.listdir(_TASKS)
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            with open(_TASKS / task / "schedstat", "rb") as handle:
                total += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return total


def _machine_jiffies() -> tuple[int | None, int | None]:
    try:
        with open(_STAT, "rb") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None, None
    if len(fields) < 5:
        return None, None
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - idle, total


def read_counters() -> Counters:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    busy, total = _machine_jiffies()
    return Counters(
        wall_s=time.perf_counter(),
        cpu_s=time.process_time(),
        minor_faults=usage.ru_minflt,
        major_faults=usage.ru_majflt,
        run_delay_ns=_run_delay_ns(),
        machine_busy_jiffies=busy,
        machine_total_jiffies=total,
    )


def window_stats(before: Counters, after: Counters) -> WindowStats:
    wall_s = after.wall_s - before.wall_s
    run_delay_s = None
    if before.run_delay_ns is not None and after.run_delay_ns is not None:
        # Threads that ended during the window drop out of the sum; never report a negative wait.
        run_delay_s = max(0, after.run_delay_ns - before.run_delay_ns) / 1e9
    others = None
    if (
        before.machine_busy_jiffies is not None
        and after.machine_busy_jiffies is not None
        and before.machine_total_jiffies is not None
        and after.machine_total_jiffies is not None
        and after.machine_total_jiffies > before.machine_total_jiffies
        and wall_s > 0
    ):
        share = (after.machine_busy_jiffies - before.machine_busy_jiffies) / (
            after.machine_total_jiffies - before.machine_total_jiffies
        )
        cores = os.cpu_count() or 1
        own_cores = (after.cpu_s - before.cpu_s) / wall_s
        others = max(0.0, share * cores - own_cores)
    return WindowStats(
        wall_s=wall_s,
        minor_faults=after.minor_faults - before.minor_faults,
        major_faults=after.major_faults - before.major_faults,
        run_delay_s=run_delay_s,
        others_busy_cores=others,
    )


@functools.lru_cache(maxsize=8)
def page_fault_cost_s(pages: int = 2048, repeats: int = 2) -> float:
    """Seconds one minor page fault costs this process: time to first-touch fresh anonymous pages.

    Used to say what share of a node's time (and so of its energy) its page faults explain. A property
    of the machine and kernel, so measured once per process (a batch's analyses share it); thread CPU
    time is not inflated by a busy machine, so two short repeats suffice.
    """
    import mmap

    page = mmap.PAGESIZE
    best = float("inf")
    for _ in range(repeats):
        region = mmap.mmap(-1, pages * page)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.thread_time()  # CPU time of this thread: a busy machine does not inflate it
        for offset in range(0, pages * page, page):
            region[offset] = 1
        elapsed = time.thread_time() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        region.close()
        if faults > 0:
            best = min(best, elapsed / faults)
    return best if best != float("inf") else 0.0
