"""How well two reports of the same workload agree (repeatability checks, ``gpu_check``, benchmarks)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from magneton.report.model import Report


@dataclass(frozen=True)
class RunComparison:
    """How well two reports of the same workload agree."""

    spearman: float  # rank correlation of per-node energies, over nodes both runs measured
    nodes: int
    total_difference: float  # |total A - total B| / mean of the two
    node_sum_difference: float  # the same for the per-node sums
    # The same for the runs' thread-synchronisation references (magneton.measure.drift); None when either run
    # has none. Runs whose references differ ran in different phases of the host: their totals may too.
    sync_reference_difference: float | None = None


def sync_reference_s(report: Report) -> float | None:
    """The median of a run's thread-synchronisation readings, or None where none was taken."""
    drift = report.machine_drift
    return statistics.median(drift.readings_s) if drift is not None and drift.readings_s else None


def _relative_difference(a: float, b: float) -> float:
    mean = (a + b) / 2
    return abs(a - b) / mean if mean > 0 else float("nan")


def compare_runs(first: Report, second: Report) -> RunComparison:
    from magneton.measure.stats import spearman

    a = {n.id: n.energy_j for n in first.nodes if n.energy_j > 0}
    b = {n.id: n.energy_j for n in second.nodes if n.energy_j > 0}
    common = sorted(a.keys() & b.keys())
    ref_a, ref_b = sync_reference_s(first), sync_reference_s(second)
    rho = spearman([a[i] for i in common], [b[i] for i in common]) if len(common) >= 2 else float("nan")
    return RunComparison(
        spearman=rho,
        nodes=len(common),
        total_difference=_relative_difference(first.total_energy_j, second.total_energy_j),
        node_sum_difference=_relative_difference(first.node_energy_sum_j, second.node_energy_sum_j),
        sync_reference_difference=_relative_difference(ref_a, ref_b) if ref_a and ref_b else None,
    )
