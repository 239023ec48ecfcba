"""The energy backend interface: open a window, close it, get joules and seconds.

Every backend states its provenance (``measured`` by a named sensor, or
``estimated`` by a named model with its constants) so no report can present an
estimate as a measurement.
"""

from __future__ import annotations

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

    def measure_idle(self, duration_s: float) -> WindowReading:
        """Measure a window in which this process does nothing (for idle power)."""
        self.synchronize()
        window = self.open_window()
        time.sleep(duration_s)
        return self.close_window(window)

    def close(self) -> None:  # noqa: B027 - a no-op by default, not abstract
        """Release sensor handles and threads."""
