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


class FakeClock:
    """A clock that moves only when the measured call runs: window lengths without timing anything."""

    def __init__(self, call_s: float) -> None:
        self.now, self.call_s = 0.0, call_s

    def __call__(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += self.call_s


def test_a_window_makes_just_the_calls_its_minimum_needs(monkeypatch: Any) -> None:
    # 1/16 s per call (exact in binary) and a 1/4 s window: 4 calls reach it exactly. A 2% margin on the
    # planned batch made it 5, a whole extra call of the whole pass in every window.
    clock = FakeClock(1 / 16)
    monkeypatch.setattr(time, "perf_counter", clock)
    calls = []

    def call() -> None:
        calls.append(1)
        clock.call()

    reading, done = WallClockBackend().measure_timed("fwd", call, 1, 0.25, max_rounds=10**6)
    assert done == len(calls) == 4
    assert reading.time_s >= 0.25
    # Calls faster than the first: the planned batch falls short, and more follow until the minimum.
    durations = iter([1 / 16] + [1 / 64] * 100)
    calls.clear()

    def uneven() -> None:
        calls.append(1)
        clock.now += next(durations)

    reading, done = WallClockBackend().measure_timed("fwd", uneven, 1, 0.25, max_rounds=10**6)
    assert reading.time_s >= 0.25 and done == len(calls)
