"""Energy from sampled values: power integrated over a window, and the refresh period of a sensor.

Used where a sensor gives instantaneous power rather than an energy counter
(NVML on pre-Volta GPUs), and to find how often a counter really changes.
"""

from __future__ import annotations

import bisect
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from itertools import pairwise

from magneton.errors import BackendError, MagnetonError


def integrate_power_trapezoid(samples: Sequence[tuple[float, float]], start_s: float, end_s: float) -> float:
    """Joules in [start_s, end_s] from (time_s, power_w) samples, piecewise linear between samples.

    Power at the window edges is interpolated between the neighbouring samples;
    beyond the first or last sample it is held constant.
    """
    if end_s < start_s:
        raise ValueError(f"window ends ({end_s}) before it starts ({start_s})")
    if not samples:
        raise ValueError("no power samples to integrate")
    points = sorted(samples)
    times = [t for t, _ in points]

    def power_at(t: float) -> float:
        i = bisect.bisect_right(times, t)
        if i == 0:
            return points[0][1]
        if i == len(points):
            return points[-1][1]
        (t0, p0), (t1, p1) = points[i - 1], points[i]
        return p0 if t1 == t0 else p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    knots = [(start_s, power_at(start_s))]
    knots.extend((t, p) for t, p in points if start_s < t < end_s)
    knots.append((end_s, power_at(end_s)))
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(knots))


def infer_update_period_s(samples: Sequence[tuple[float, float]]) -> float | None:
    """Median time between changes of a polled value; None with fewer than two full periods."""
    change_times = [t for (_, v0), (t, v1) in pairwise(samples) if v1 != v0]
    intervals = [b - a for a, b in pairwise(change_times)]
    if len(intervals) < 2:
        return None
    return statistics.median(intervals)


def counter_power_w(samples: Sequence[tuple[float, float]]) -> float | None:
    """Mean power (W) of a millijoule counter between its first and last observed refresh."""
    changes = [(t, v) for (_, v0), (t, v) in pairwise(samples) if v != v0]
    if len(changes) < 2 or changes[-1][0] <= changes[0][0]:
        return None
    (t0, v0), (t1, v1) = changes[0], changes[-1]
    return (v1 - v0) * 1e-3 / (t1 - t0)


def sample_changes(
    read: Callable[[], float],
    max_duration_s: float,
    enough_changes: int = 12,
    clock: Callable[[], float] = time.perf_counter,
) -> list[tuple[float, float]]:
    """Read ``read()`` in a tight loop until it changed ``enough_changes`` times or time ran out."""
    start = clock()
    samples = [(start, read())]
    changes = 0
    while changes < enough_changes:
        now = clock()
        if now - start > max_duration_s:
            break
        value = read()
        if value != samples[-1][1]:
            changes += 1
        samples.append((now, value))
    return samples


class PowerPoller:
    """Background thread sampling board power; keeps only samples open windows need."""

    def __init__(self, read_power_w: Callable[[], float], interval_s: float) -> None:
        self._read_power_w = read_power_w
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._samples: list[tuple[float, float]] = []
        self._open_starts: list[float] = []
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._sample()  # a first sample before any window opens
        self._thread = threading.Thread(target=self._loop, name="magneton-power-poller", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        before = time.perf_counter()
        power_w = self._read_power_w()
        now = (before + time.perf_counter()) / 2  # the reading belongs to the middle of the call
        with self._lock:
            self._samples.append((now, power_w))
            self._prune()

    def _prune(self) -> None:
        # Keep the last sample at or before the oldest open window's start: it
        # is needed to interpolate power at that start.
        keep_from = min(self._open_starts) if self._open_starts else self._samples[-1][0]
        times = [t for t, _ in self._samples]
        cut = max(bisect.bisect_right(times, keep_from) - 1, 0)
        if cut:
            del self._samples[:cut]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._sample()
            except Exception as err:  # surfaced by the next close_window
                self._error = err
                return

    def open(self) -> float:
        start_s = time.perf_counter()
        with self._lock:
            self._open_starts.append(start_s)
        return start_s

    def close(self, start_s: float) -> tuple[float, float]:
        """Return (energy_j, time_s) for the window opened at ``start_s``."""
        end_s = time.perf_counter()
        # Wait for one sample past the end so the end power is interpolated, not held.
        deadline = end_s + 20 * self.interval_s + 0.1
        while True:
            self._raise_if_failed(start_s)
            with self._lock:
                if self._samples and self._samples[-1][0] >= end_s:
                    break
            if time.perf_counter() > deadline:
                self._forget(start_s)
                raise BackendError(f"power polling stalled: no sample for {deadline - end_s:.2f} s")
            time.sleep(self.interval_s / 4)
        with self._lock:
            samples = list(self._samples)
        self._forget(start_s)
        return integrate_power_trapezoid(samples, start_s, end_s), end_s - start_s

    def _forget(self, start_s: float) -> None:
        with self._lock:
            self._open_starts.remove(start_s)

    def _raise_if_failed(self, start_s: float) -> None:
        if self._error is not None:
            self._forget(start_s)
            if isinstance(self._error, MagnetonError):
                raise self._error  # already typed (DeviceLostError, ...) by the read function
            raise BackendError(f"power polling thread failed: {self._error!r}") from self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
