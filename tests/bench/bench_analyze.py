"""Benchmarks for `magneton analyze` (run with `just bench`). Prints figures; asserts nothing.

Model: the bundled 4-layer GPT-2-like TinyGPT (n_embd 256, seq 128, batch 4) on CPU.
Every ratio is measured within this one run, on this machine, so machine speed cancels out.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = "magneton.examples.tiny_gpt:workload"


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _current_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def memory_child(mode: str) -> None:
    """Runs in a fresh subprocess: peak RSS above a torch-imported baseline, for ``forward`` or ``analysis``.

    Both modes import the same modules (torch.export included) before the baseline, so the
    difference is the work itself: the model's weights and activations, plus the analysis' own state.
    """
    import torch
    import torch.export  # noqa: F401  (loaded in both modes: code size is not the analysis' memory)

    from magneton.examples.tiny_gpt import build_tiny_gpt
    from magneton.pipeline import AnalyzeOptions, analyze_workload
    from magneton.workload import Workload

    _reset_peak_rss()
    base = _current_rss_bytes()
    model, args = build_tiny_gpt()
    if mode == "forward":
        with torch.no_grad():
            model(*args)
    else:
        analyze_workload(Workload(model, args), TARGET, AnalyzeOptions(backend="estimate"))
    print(json.dumps({"peak_bytes": _peak_rss_bytes() - base}))


def _peak_in_subprocess(mode: str) -> int:
    child = subprocess.run(
        [sys.executable, __file__, "--memory-child", mode], check=True, capture_output=True, text=True
    )
    return int(json.loads(child.stdout.strip().splitlines()[-1])["peak_bytes"])


def forward_time_s(repeats: int = 10) -> float:
    import torch

    from magneton.examples.tiny_gpt import build_tiny_gpt

    model, args = build_tiny_gpt()
    with torch.no_grad():
        for _ in range(3):
            model(*args)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(*args)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def forward_child() -> None:
    print(json.dumps({"forward_s": forward_time_s(repeats=20)}))


def forward_spread_across_processes(processes: int = 4) -> list[float]:
    """Plain forward time in fresh processes: context for run-to-run differences of the whole pass."""
    times = []
    for _ in range(processes):
        child = subprocess.run(
            [sys.executable, __file__, "--forward-child"], check=True, capture_output=True, text=True
        )
        times.append(float(json.loads(child.stdout.strip().splitlines()[-1])["forward_s"]))
    return times


def run_cli_analyze(json_path: Path) -> float:
    start = time.perf_counter()
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "magneton",
            "analyze",
            TARGET,
            "--backend",
            "estimate",
            "--quiet",
            "--json",
            str(json_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    if process.returncode not in (0, 1):  # 1 means findings, which an analysis may well have
        raise SystemExit(f"magneton analyze failed with exit code {process.returncode}")
    return time.perf_counter() - start


def main() -> None:
    from magneton import load_report
    from magneton.report.compare import compare_runs

    print(f"benchmark model: {TARGET} (4 layers, n_embd 256, seq 128, batch 4), CPU, estimate backend")
    forward_s = forward_time_s()
    with tempfile.TemporaryDirectory() as tmp:
        first_json, second_json = Path(tmp) / "a.json", Path(tmp) / "b.json"
        first_wall_s = run_cli_analyze(first_json)
        second_wall_s = run_cli_analyze(second_json)
        first = load_report(first_json)
        second = load_report(second_json)
    print(f"plain forward pass:                {forward_s * 1e3:.1f} ms (median of 10)")
    for label, wall_s in (("run 1", first_wall_s), ("run 2", second_wall_s)):
        print(f"magneton analyze wall time, {label}:  {wall_s:.2f} s = {wall_s / forward_s:.0f}x one forward pass")
    for label, report in (("run 1", first), ("run 2", second)):
        print(f"coverage, {label}:                   {report.coverage:.3f}  (target 0.8-1.25)")

    forward_peak, analysis_peak = _peak_in_subprocess("forward"), _peak_in_subprocess("analysis")
    print(f"peak memory, model + one forward pass: {forward_peak / 2**20:.1f} MiB (RSS above torch baseline)")
    print(
        f"peak memory, model + analysis:         {analysis_peak / 2**20:.1f} MiB "
        f"= {analysis_peak / forward_peak:.2f}x the forward pass"
    )

    agreement = compare_runs(first, second)
    print(f"repeatability, Spearman of {agreement.nodes} per-node energies: {agreement.spearman:.3f}  (target >= 0.9)")
    print(f"repeatability, total-energy difference: {agreement.total_difference:.1%}  (target <= 10%)")
    print(f"repeatability, per-node sum difference: {agreement.node_sum_difference:.1%}")
    spread = forward_spread_across_processes()
    print(
        f"context: plain forward time in {len(spread)} fresh processes (no Magneton): "
        f"{min(spread) * 1e3:.1f}-{max(spread) * 1e3:.1f} ms, spread {(max(spread) - min(spread)) / min(spread):.0%}"
    )
    print(
        f"energies are {first.energy_provenance.describe()} "
        f"with watts_per_core={first.backend.constants['watts_per_core']}"
    )


if __name__ == "__main__":
    if "--memory-child" in sys.argv:
        memory_child(sys.argv[-1])
    elif "--forward-child" in sys.argv:
        forward_child()
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        main()
