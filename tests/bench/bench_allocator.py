"""Repeatability under the process' own allocator, against the pinned one (run by `just bench`).

Two fresh `magneton analyze` processes per allocator setting (`--allocator process`, the default,
and `--allocator steady`): Spearman of per-node energies and the total-energy difference between
the two runs of each setting (targets: Spearman >= 0.9, totals within 10%), and the page faults per
call each setting reports. Prints figures; asserts nothing. On a shared machine, say so.

    python tests/bench/bench_allocator.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

TARGET = "magneton.examples.tiny_gpt:workload"


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


def main() -> None:
    from magneton.report.compare import compare_runs
    from magneton.report.load import load_report

    trials = 3 if "--quick" in sys.argv else 7
    print(f"{TARGET}, estimate backend, up to {trials} trials; the machine may be busy")
    with tempfile.TemporaryDirectory() as tmp:
        for allocator in ("process", "steady"):
            paths = [Path(tmp) / f"{allocator}-{i}.json" for i in (1, 2)]
            for path in paths:
                run(allocator, path, trials)
            first, second = (load_report(path) for path in paths)
            agreement = compare_runs(first, second)
            faults = [r.page_faults.minor_per_call if r.page_faults else float("nan") for r in (first, second)]
            print(
                f"--allocator {allocator}: Spearman {agreement.spearman:.3f} over {agreement.nodes} nodes, "
                f"totals differ by {agreement.total_difference:.1%} ({first.total_energy_j * 1e3:.1f} / "
                f"{second.total_energy_j * 1e3:.1f} mJ), page faults per call {faults[0]:,.0f} / {faults[1]:,.0f}"
            )


if __name__ == "__main__":
    main()
