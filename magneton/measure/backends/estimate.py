"""The ``estimate`` backend: process CPU time x watts per core. Never a measurement."""

from __future__ import annotations

import time
from typing import Any

from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading
from magneton.measure.backends.cpu_power import WattsPerCore, resolve_watts_per_core

# CPU-time accounting is exact to the nanosecond but a window this short is
# dominated by scheduler jitter; 20 ms keeps the per-window noise to a few %.
ESTIMATE_MIN_WINDOW_S = 0.02


class EstimateBackend(EnergyBackend):
    """Energy = CPU seconds of this process (all threads) x watts per busy core."""

    name = "estimate"

    def __init__(self, watts_per_core: float | None = None) -> None:
        self.power: WattsPerCore = resolve_watts_per_core(watts_per_core)

    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            provenance="estimated",
            sensor="none: process CPU time (CLOCK_PROCESS_CPUTIME_ID) x per-core power",
            min_window_s=ESTIMATE_MIN_WINDOW_S,
            resolution_j=self.power.watts * time.clock_getres(time.CLOCK_PROCESS_CPUTIME_ID),
            formula="energy_j = process_cpu_time_s * watts_per_core",
            constants={
                "watts_per_core": self.power.watts,
                "watts_per_core_origin": self.power.origin,
                "cpu_model": self.power.cpu_model,
                "detail": self.power.detail,
            },
            notes=("estimated from CPU time; no energy sensor was read",),
        )

    def open_window(self) -> Any:
        return time.process_time(), time.perf_counter()

    def close_window(self, window: Any) -> WindowReading:
        cpu0, wall0 = window
        cpu_s = time.process_time() - cpu0
        return WindowReading(energy_j=cpu_s * self.power.watts, time_s=time.perf_counter() - wall0)
