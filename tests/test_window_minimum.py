"""A measurement window never ends below its minimum, however many calls that takes."""

from __future__ import annotations

import time
from typing import Any

from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading


class WallClockBackend(EnergyBackend):
    """Energy is 1 W x the window's wall time: enough to see how long a window lasted."""

    def info(self) -> BackendInfo:
        return BackendInfo(name="estimate", provenance="estimated", sensor="wall clock", min_window_s=0.05)

    def open_window(self) -> Any:
        return time.perf_counter()

    def close_window(self, window: Any) -> WindowReading:
        elapsed = time.perf_counter() - window
        return WindowReading(energy_j=elapsed, time_s=elapsed)


def test_a_window_runs_past_the_round_cap_to_reach_its_minimum() -> None:
    calls = []
    # A call of a few microseconds, as a CUDA graph launch is, and a cap of 10 rounds per batch.
    reading, done = WallClockBackend().measure_timed("tiny", lambda: calls.append(1), 1, 0.05, max_rounds=10)
    assert reading.time_s >= 0.05
    assert done == len(calls) > 10
