"""Thread-synchronisation drift: a host effect nothing inside the machine shows.

On a VM (the 2-core one Magneton was built on, an AMD EPYC guest) the cost of
synchronising two intra-op threads changes for seconds to minutes at a time:
TinyGPT's CPU time per call moved between 48 and 62 ms within one process with
two threads, and stayed at 46-51 ms with one, while no process in the guest was
busy, no thread waited for a CPU and no time was stolen. The host moves the
virtual CPUs (further apart, or onto one physical core), and the OpenMP barriers
of every parallel operator pay for it, counted as this process' CPU time.

A reference that is all synchronisation shows it: an in-place add over 65,536
float32 values, which PyTorch splits over its intra-op threads, so a call is
mostly a fork and a join (10-11 us of process CPU time per call in the fast
phases on that VM, 15-16 us in the slow ones; its per-second readings followed
TinyGPT's with correlation 0.85 over 80 s). It is timed once per trial, between
windows, never inside one. The spread of its readings says whether the machine
changed speed during the analysis; the readings themselves let two analyses be
compared (a run in a slow phase reads a higher reference).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

REFERENCE_NUMEL = 65_536  # above PyTorch's intra-op grain (32,768), so every call forks and joins
REFERENCE_WINDOW_S = 0.02
# Above this spread (largest reading / smallest - 1) the report warns. Within one phase the readings of
# the VM above varied by up to ~20% (10-12 us); between phases by ~50%.
DRIFT_WARNING_SPREAD = 0.25
REFERENCE = f"in-place add over {REFERENCE_NUMEL:,} float32 values on the intra-op threads (fork/join bound)"


@dataclass(frozen=True)
class DriftSummary:
    reference: str
    readings_s: list[float]  # process CPU time per reference call, one reading per trial
    threshold: float

    @property
    def spread(self) -> float:
        low = min(self.readings_s, default=0.0)
        return max(self.readings_s) / low - 1.0 if low > 0 else 0.0

    @property
    def warning(self) -> str | None:
        if len(self.readings_s) < 2 or self.spread <= self.threshold:
            return None
        return (
            f"the machine's thread-synchronisation cost changed by {self.spread:.0%} during this analysis "
            f"(reference {min(self.readings_s) * 1e6:.1f}-{max(self.readings_s) * 1e6:.1f} us per call) with "
            "nothing else busy in it (most likely the host moved its virtual CPUs); energies of parallel "
            "operators moved with it, and another run can differ by as much"
        )


class SyncReference:
    """Times the reference on this process' intra-op threads; None where it says nothing (one thread)."""

    def __init__(self) -> None:
        import torch

        self._values = torch.zeros(REFERENCE_NUMEL)
        self.readings_s: list[float] = []

    @classmethod
    def for_device(cls, device: str) -> SyncReference | None:
        import torch

        if not device.startswith("cpu") or torch.get_num_threads() < 2:
            return None
        return cls()

    def read(self) -> float:
        """Process CPU time per call over at least REFERENCE_WINDOW_S of wall time."""
        values = self._values
        values.add_(1.0)  # warm: the first call after other work pays for waking the threads
        calls = 0
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        while time.perf_counter() - wall_start < REFERENCE_WINDOW_S:
            values.add_(1.0)
            calls += 1
        reading = (time.process_time() - cpu_start) / calls
        self.readings_s.append(reading)
        return reading

    def summary(self) -> DriftSummary | None:
        if not self.readings_s:
            return None
        return DriftSummary(REFERENCE, list(self.readings_s), DRIFT_WARNING_SPREAD)
