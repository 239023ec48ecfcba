"""Device check: measure a tiny GPT-2-style model on a CUDA GPU with NVML, twice.

Run ``python -m magneton.gpu_check`` on a machine with an NVIDIA GPU. It
prints the sensor, the per-operator energies of two independent analyses,
their coverage (per-node sum / whole forward pass) and how well the two runs
agree: Spearman rank correlation of per-node energies and the difference of
the total energies. Exit codes: 0 the runs agree, 1 they do not (thresholds
below), 2 no CUDA GPU or NVML unusable.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from magneton.report.model import Report

# Two runs of the same program on the same idle GPU should rank operators
# almost identically and agree on the total within a few percent.
MIN_SPEARMAN = 0.8
MAX_TOTAL_DIFF_PCT = 10.0
TIME_BUDGET_S = 300.0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m magneton.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch CUDA device (default: cuda)")
    parser.add_argument("--trials", type=int, default=5, help="trials per node in each run (default: 5)")
    parser.add_argument("--top", type=int, default=25, help="print the N most energetic nodes (default: 25)")
    return parser.parse_args(argv)


def _probe_nvml(device: str) -> str | None:
    """Return why the check cannot run, or None when CUDA and NVML are both usable."""
    import torch

    if not torch.cuda.is_available():
        return (
            f"no CUDA GPU: torch {torch.__version__} (CUDA build {torch.version.cuda}) "
            "reports torch.cuda.is_available() == False"
        )
    from magneton.errors import MagnetonError
    from magneton.measure.backends import cuda_index
    from magneton.measure.backends.nvml import NvmlBackend

    try:
        backend = NvmlBackend(cuda_index(device))
    except MagnetonError as err:
        return f"NVML unusable: {err}"
    try:
        info = backend.info()
        import pynvml

        print(
            f"device: {torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}, driver {_driver_version(pynvml)}"
        )
        print(f"sensor: {info.sensor}")
        print(
            f"  update period {info.update_period_s * 1e3 if info.update_period_s else float('nan'):.1f} ms, "
            f"min window {info.min_window_s * 1e3:.0f} ms, resolution {info.resolution_j} J"
        )
        for note in info.notes:
            print(f"  note: {note}")
    finally:
        backend.close()
    return None


def _driver_version(pynvml: object) -> str:
    try:
        version = pynvml.nvmlSystemGetDriverVersion()  # type: ignore[attr-defined]
    except Exception as err:  # only shown; the check does not depend on it
        return f"unknown ({type(err).__name__})"
    return version.decode() if isinstance(version, bytes) else str(version)


def _print_run(label: str, report: Report, elapsed_s: float, top: int) -> None:
    nodes = sorted(report.nodes, key=lambda n: n.energy_j, reverse=True)
    coverage = report.coverage
    print(f"\n== {label}: {elapsed_s:.1f} s, backend {report.backend.name} ({report.energy_provenance.describe()})")
    print(
        f"total {report.total_energy_j * 1e3:.3f} mJ / forward, {report.total_time_s * 1e3:.3f} ms; "
        f"coverage {coverage if coverage is None else f'{coverage:.2f}'}; {len(nodes)} nodes"
    )
    print(f"{'id':<28} {'op':<40} {'energy_mJ':>10} {'time_ms':>9}")
    for node in nodes[:top]:
        print(f"{node.id[:28]:<28} {node.op[:40]:<40} {node.energy_j * 1e3:>10.4f} {node.time_s * 1e3:>9.4f}")
    if len(nodes) > top:
        print(f"... {len(nodes) - top} more")
    modes: dict[str, int] = {}
    for node in report.nodes:
        if node.replayed_as is not None:
            modes[node.replayed_as] = modes.get(node.replayed_as, 0) + 1
    print("replayed as: " + ", ".join(f"{count} {mode}" for mode, count in sorted(modes.items())))


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    started = time.perf_counter()
    problem = _probe_nvml(args.device)
    if problem is not None:
        print(f"gpu_check cannot run: {problem}", file=sys.stderr)
        return 2

    # Imported late: the analysis pulls in torch.fx machinery not needed to say "no GPU".
    from magneton.examples.tiny_gpt import build_tiny_gpt
    from magneton.pipeline import AnalyzeOptions, analyze_workload
    from magneton.workload import Workload

    model, inputs = build_tiny_gpt(device=args.device)
    workload = Workload(fn=model, args=inputs)
    options = AnalyzeOptions.from_flat(backend="nvml", device=args.device, trials=args.trials)
    label = "magneton.examples.tiny_gpt:build_tiny_gpt (n_layer=4, n_embd=256, n_head=4, seq=128, batch=4)"
    from magneton.errors import MagnetonError

    reports = []
    for run in (1, 2):
        run_start = time.perf_counter()
        try:
            report = analyze_workload(workload, label, options)
        except (MagnetonError, RuntimeError) as err:  # a CUDA or NVML failure is "cannot run", not "disagree"
            print(f"gpu_check cannot run: run {run} failed: {type(err).__name__}: {err}", file=sys.stderr)
            return 2
        _print_run(f"run {run}", report, time.perf_counter() - run_start, args.top)
        reports.append(report)

    from magneton.report.compare import compare_runs

    agreement = compare_runs(reports[0], reports[1])
    rho, diff_pct, common = agreement.spearman, agreement.total_difference * 100, agreement.nodes
    elapsed_s = time.perf_counter() - started
    print(f"\nrepeatability: Spearman {rho:.3f} over {common} nodes, total energy differs by {diff_pct:.2f}%")
    print(f"coverage: run 1 {reports[0].coverage}, run 2 {reports[1].coverage}")
    print(f"elapsed {elapsed_s:.1f} s (budget {TIME_BUDGET_S:.0f} s)")
    if elapsed_s > TIME_BUDGET_S:
        print(f"warning: the check took longer than {TIME_BUDGET_S:.0f} s; lower --trials", file=sys.stderr)
    ok = rho >= MIN_SPEARMAN and diff_pct <= MAX_TOTAL_DIFF_PCT
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict}: need Spearman >= {MIN_SPEARMAN} and total difference <= {MAX_TOTAL_DIFF_PCT}%")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
