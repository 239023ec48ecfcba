"""Measuring on a busy machine (run by `just bench`). Prints figures; asserts nothing.

The same analysis runs quiet, then with a competing CPU-bound process (a Python busy loop, pinned
to core 0 with taskset where available), each twice: once as before this change (contended windows
neither re-measured nor flagged) and once with re-measuring and flagging. Each busy run is compared
with the quiet run: total energy ratio, Spearman of per-node energies, and how many of the nodes
that moved by more than 15% were flagged ``contended``. The CPU wait of windows (run delay per
second) is printed for quiet and busy runs: it is what the contention threshold is calibrated on.

    python tests/bench/bench_contention.py [--quick]

Figures from a machine other agents are using are not quiet baselines: say so with any figure.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from typing import Any


def analyse(remeasure: bool, trials: int) -> Any:
    from magneton.examples.tiny_gpt import build_tiny_gpt
    from magneton.pipeline import AnalyzeOptions, analyze_workload
    from magneton.workload import Workload

    model, args = build_tiny_gpt()
    options = AnalyzeOptions.from_flat(
        backend="estimate", trials=trials, min_trials=trials, remeasure_contended=remeasure, allocator_check=False
    )
    return analyze_workload(Workload(model, args), "tiny_gpt", options)


def start_competitor() -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "while True: pass"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    process = subprocess.Popen(command)
    time.sleep(0.5)
    return process


def compare(label: str, quiet: Any, busy: Any) -> None:
    from magneton.report.compare import compare_runs

    agreement = compare_runs(quiet, busy)
    quiet_by_id = {n.id: n.energy_j for n in quiet.nodes if n.energy_j > 0}
    moved = [n for n in busy.nodes if n.id in quiet_by_id and abs(n.energy_j / quiet_by_id[n.id] - 1) > 0.15]
    flagged = sum(1 for n in moved if n.contended)
    contention = busy.contention
    print(
        f"{label}: total {busy.total_energy_j / quiet.total_energy_j:.2f}x quiet, node sum "
        f"{busy.node_energy_sum_j / quiet.node_energy_sum_j:.2f}x, Spearman {agreement.spearman:.3f}; "
        f"{len(moved)} nodes moved > 15%, {flagged} of them flagged contended; "
        f"{contention.contended_windows}/{contention.windows} windows contended, "
        f"{contention.remeasured_windows} re-measured; warning: {'yes' if contention.warning else 'no'}"
    )


def delays(report: Any) -> str:
    values = [n.run_delay_s_per_s for n in report.nodes if n.run_delay_s_per_s is not None]
    if not values:
        return "n/a"
    quantiles = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
    return (
        f"median {statistics.median(values):.3f}, p10 {quantiles[0]:.3f}, p90 {quantiles[-1]:.3f}, "
        f"min {min(values):.3f}, max {max(values):.3f} s/s (per node: median of its windows)"
    )


def main() -> None:
    trials = 3 if "--quick" in sys.argv else 5
    print("TinyGPT 4 layers, estimate backend; figures on a shared machine are not a quiet baseline")
    quiet = analyse(remeasure=True, trials=trials)
    print(f"quiet: total {quiet.total_energy_j * 1e3:.1f} mJ; window CPU wait {delays(quiet)}")
    competitor = start_competitor()
    try:
        before = analyse(remeasure=False, trials=trials)
        after = analyse(remeasure=True, trials=trials)
    finally:
        competitor.kill()
        competitor.wait()
    print(f"busy: window CPU wait {delays(before)}")
    compare("busy, before (no re-measuring)", quiet, before)
    compare("busy, after (re-measured, flagged)", quiet, after)


if __name__ == "__main__":
    main()
