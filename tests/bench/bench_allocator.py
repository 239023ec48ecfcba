"""Repeatability of analyses under each allocator setting (run by `just bench`).

Fresh `magneton analyze` processes, two per setting (`--runs N` for more), the settings
interleaved: `--allocator settled` (the default: glibc's defaults taken to a long-running
process's state), `process` (as found) and `steady` (thresholds fixed). For each setting:
Spearman of per-node energies and the total-energy difference over every pair of its runs
(targets: Spearman >= 0.9, totals within 10%), the page faults per call of each run, and each
run's thread-synchronisation reference (a run in a slow phase of the host reads a higher one:
README, "Busy machines"). Prints figures; asserts nothing.

    python tests/bench/bench_allocator.py [--quick] [--runs N]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TARGET = "magneton.examples.tiny_gpt:workload"
SAME_PHASE = 0.10  # sync references this close: both runs met the host in the same state


def run(allocator: str, path: Path, trials: int) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "magneton",
            "analyze",
            TARGET,
            "--backend",
            "estimate",
            "--quiet",
            "--no-allocator-check",
            "--allocator",
            allocator,
            "--trials",
            str(trials),
            "--json",
            str(path),
        ],
        check=False,
        stdout=subprocess.DEVNULL,
    )


def reference_us(report: Any) -> str:
    from magneton.report.compare import sync_reference_s

    reading = sync_reference_s(report)
    return f"{reading * 1e6:.1f}" if reading is not None else "-"


def main() -> None:
    from magneton.report.compare import compare_runs
    from magneton.report.load import load_report

    trials = 3 if "--quick" in sys.argv else 7
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 2
    settings = ("settled", "process", "steady")
    print(f"{TARGET}, estimate backend, up to {trials} trials, {runs} runs per setting; the machine may be busy")
    reports: dict[str, list[Any]] = {allocator: [] for allocator in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(runs):  # settings interleaved, so a slow phase of the host hits them alike
            for allocator in settings:
                path = Path(tmp) / f"{allocator}-{index}.json"
                run(allocator, path, trials)
                reports[allocator].append(load_report(path))
    for allocator, runs_of in reports.items():
        pairs = [compare_runs(a, b) for i, a in enumerate(runs_of) for b in runs_of[i + 1 :]]
        within = sum(1 for pair in pairs if pair.total_difference <= 0.10)
        # Pairs measured in the same phase of the host: their thread-synchronisation references agree.
        same_phase = [
            p for p in pairs if p.sync_reference_difference is not None and p.sync_reference_difference <= SAME_PHASE
        ]
        within_same = sum(1 for pair in same_phase if pair.total_difference <= 0.10)
        totals = " / ".join(f"{r.total_energy_j * 1e3:.1f}" for r in runs_of)
        faults = " / ".join(f"{r.page_faults.minor_per_call:,.0f}" if r.page_faults else "-" for r in runs_of)
        print(
            f"--allocator {allocator}: Spearman >= {min(p.spearman for p in pairs):.3f}, totals apart by at most "
            f"{max(p.total_difference for p in pairs):.1%}, {within}/{len(pairs)} pairs within 10% "
            f"({within_same}/{len(same_phase)} of the pairs whose sync references agree within {SAME_PHASE:.0%})\n"
            f"    totals mJ {totals}\n    page faults per call {faults}\n"
            f"    sync reference us per call {' / '.join(reference_us(r) for r in runs_of)}"
        )


if __name__ == "__main__":
    main()
