"""The energy backend interface: open a window, close it, get joules and seconds.

Every backend states its provenance (``measured`` by a named sensor, or
``estimated`` by a named model with its constants) so no report can present an
estimate as a measurement.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Provenance = Literal["measured", "estimated"]


@dataclass(frozen=True)
class BackendInfo:
    """What a backend is and how far its numbers can be trusted."""

    name: str
    provenance: Provenance
    sensor: str
    min_window_s: float
    resolution_j: float | None = None
    update_period_s: float | None = None
    formula: str | None = None
    constants: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provenance": self.provenance,
            "sensor": self.sensor,
            "min_window_s": self.min_window_s,
            "resolution_j": self.resolution_j,
            "update_period_s": self.update_period_s,
            "formula": self.formula,
            "constants": dict(self.constants),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class WindowReading:
    """Energy (J) and wall time (s) spent between opening and closing a window."""

    energy_j: float
    time_s: float


class EnergyBackend(ABC):
    """A source of joules. Subclasses implement the three abstract methods."""

    name: str = "abstract"
    # Whether a window's reading changes when other processes compete for the CPU. Sensors and
    # CPU-time estimates do; a replayed trace does not, so re-measuring its contended windows is moot.
    contention_sensitive: bool = True

    @abstractmethod
    def info(self) -> BackendInfo:
        """Describe the sensor or model, its resolution and minimum window."""

    @abstractmethod
    def open_window(self) -> Any:
        """Start a measurement window; returns an opaque token for close_window."""

    @abstractmethod
    def close_window(self, window: Any) -> WindowReading:
        """End the window started by open_window and return what was spent in it."""

    def synchronize(self) -> None:  # noqa: B027 - a no-op by default, not abstract
        """Wait for queued device work; accelerators override this."""

    def measure(self, key: str, run: Callable[[], None], rounds: int) -> WindowReading:
        """Measure ``run`` (which performs ``rounds`` calls of the thing named ``key``).

        Returns totals for the whole window; callers divide by ``rounds``.
        The key lets recording and replaying backends attribute the window.
        """
        self.synchronize()
        window = self.open_window()
        run()
        self.synchronize()
        return self.close_window(window)

    def measure_timed(
        self,
        key: str,
        call: Callable[[], Any],
        rounds: int,
        min_window_s: float,
        max_rounds: int,
        calls_per_round: int = 1,
    ) -> tuple[WindowReading, int]:
        """One window that times itself: ``rounds`` calls, then more until ``min_window_s`` has passed.

        Each call of ``call`` performs ``calls_per_round`` calls of the thing named ``key`` (recording
        and replaying backends keep per-call values).

        Calls run in batches with one synchronisation after each (on a GPU the clock must include
        the queued work; a sync per call would inflate short kernels). Each next batch is sized
        from the time per call so far to just fill the window (no margin: a batch that falls short is
        followed by another), at most doubling the calls made and at most ``max_rounds`` calls. No
        window ends below its minimum: a 3 µs graph launch needs far more than any fixed cap of rounds
        to fill a one-second NVML window.
        Returns the reading and the number of calls made.
        """
        self.synchronize()
        window = self.open_window()
        start = time.perf_counter()
        done, batch = 0, max(1, min(rounds, max_rounds))
        while True:
            for _ in range(batch):
                call()
            done += batch
            self.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= min_window_s:
                break
            # Exactly the calls the rest of the window needs at the rate so far: a margin here cost a whole extra
            # call whenever the rest was a whole number of calls (a 40 ms forward pass in a 0.2 s window: 6 calls
            # for 5). A batch that falls short is followed by another; the loop never ends below the minimum.
            needed = math.ceil((min_window_s - elapsed) / max(elapsed / done, 1e-9))
            batch = max(1, min(needed, done * 2, max_rounds))
        return self.close_window(window), done

    def discard_window(self, key: str, from_end: int) -> None:  # noqa: B027 - a no-op by default
        """Forget a window of ``key`` already taken (``from_end`` 1: the last), e.g. a contended one
        that was measured again; recording backends drop it so a replay sees the kept windows only."""

    def measure_idle(self, duration_s: float) -> WindowReading:
        """Measure a window in which this process does nothing (for idle power)."""
        self.synchronize()
        window = self.open_window()
        time.sleep(duration_s)
        return self.close_window(window)

    def close(self) -> None:  # noqa: B027 - a no-op by default, not abstract
        """Release sensor handles and threads."""
