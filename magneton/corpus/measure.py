"""Measuring a case's two variants against each other: the slow/fast energy ratio.

Both variants run in one process, interleaved trial by trial (the order flips
every trial) so that a change in machine load during the run hits both sides
alike. Each trial measures a window of whole forward passes per variant, long
enough for the backend; the ratio of a trial is slow energy / fast energy per
call, and the case's ratio is the median over trials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from magneton.diff.settings import Settings, applied
from magneton.measure.options import Allocator
from magneton.measure.stats import Summary, summarize
from magneton.workload import Workload

DEFAULT_TRIALS = 15
DEFAULT_WINDOW_S = 0.1  # per variant and trial; the estimate backend's CPU-time clock needs ~10 ms ticks
CALIBRATION_S = 0.05


@dataclass(frozen=True)
class BuiltVariant:
    """A loaded variant: its workload and the global torch settings its build left behind."""

    name: str
    workload: Workload
    settings: Settings

    def call(self) -> Any:
        return self.workload.fn(*self.workload.args, **self.workload.kwargs)


@dataclass(frozen=True)
class PairEnergy:
    """Per-call energy of each variant and their ratio, with the backend that produced them."""

    ratio: Summary  # per-trial slow/fast energy ratios
    slow_energy_j: Summary  # joules per call
    fast_energy_j: Summary
    slow_time_s: Summary
    fast_time_s: Summary
    trials: int
    backend: str
    provenance: str  # measured | estimated, from the backend
    sensor: str
    allocator: str = "settled"  # as analyze measures: see magneton.measure.options.PassOptions.allocator

    def to_json(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio.to_json(),
            "slow_energy_j": self.slow_energy_j.to_json(),
            "fast_energy_j": self.fast_energy_j.to_json(),
            "slow_time_s": self.slow_time_s.to_json(),
            "fast_time_s": self.fast_time_s.to_json(),
            "trials": self.trials,
            "backend": {"name": self.backend, "provenance": self.provenance, "sensor": self.sensor},
            "allocator": self.allocator,
        }


def _rounds_for(call: Callable[[], Any], sync: Callable[[], None], window_s: float) -> int:
    calls, batch, start = 0, 1, time.perf_counter()
    while True:
        for _ in range(batch):
            call()
        sync()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= CALIBRATION_S or calls >= 2000:
            break
        batch *= 2
    return max(1, round(window_s / max(elapsed / calls, 1e-9)))


def measure_pair(
    slow: BuiltVariant,
    fast: BuiltVariant,
    backend_name: str = "auto",
    device: str = "cpu",
    trials: int = DEFAULT_TRIALS,
    window_s: float = DEFAULT_WINDOW_S,
    allocator: Allocator = "settled",
) -> PairEnergy:
    """Interleaved whole-pass energy of both variants, under each one's own global settings."""
    import torch

    from magneton.measure.allocator import apply_allocator
    from magneton.measure.backends import BackendOptions, create_backend

    if trials < 1:
        raise ValueError("trials must be >= 1")
    apply_allocator(allocator)  # the state analyze measures in (magneton.measure.allocator)
    choice = create_backend(backend_name, BackendOptions(device=device))
    backend = choice.backend
    info = backend.info()
    window_s = max(window_s, info.min_window_s)
    variants = (slow, fast)
    rounds: dict[str, int] = {}
    samples: dict[str, list[tuple[float, float]]] = {"slow": [], "fast": []}
    try:
        with torch.no_grad():
            for variant in variants:
                with applied(variant.settings):
                    for _ in range(3):
                        variant.call()
                    rounds[variant.name] = _rounds_for(variant.call, backend.synchronize, window_s)
            for trial in range(trials):
                for variant in variants if trial % 2 == 0 else variants[::-1]:
                    n = rounds[variant.name]

                    def run(v: BuiltVariant = variant, n: int = n) -> None:
                        for _ in range(n):
                            v.call()

                    with applied(variant.settings):
                        reading = backend.measure(f"corpus:{variant.name}", run, n)
                    samples[variant.name].append((reading.energy_j / n, reading.time_s / n))
    finally:
        backend.close()
    ratios = [s[0] / f[0] if f[0] > 0 else float("inf") for s, f in zip(samples["slow"], samples["fast"], strict=True)]
    return PairEnergy(
        ratio=summarize(ratios),
        slow_energy_j=summarize([e for e, _ in samples["slow"]]),
        fast_energy_j=summarize([e for e, _ in samples["fast"]]),
        slow_time_s=summarize([t for _, t in samples["slow"]]),
        fast_time_s=summarize([t for _, t in samples["fast"]]),
        trials=trials,
        backend=info.name,
        provenance=info.provenance,
        sensor=info.sensor,
        allocator=allocator,
    )


__all__ = ["BuiltVariant", "PairEnergy", "measure_pair"]
