"""Benchmark for training steps (run with `just bench`; `--quick` for a fast check). Prints figures; asserts nothing.

Workload: ``magneton.examples.tiny_gpt:train_workload`` (2-layer TinyGPT, AdamW for-loop, CPU). Figures:

- coverage: the per-operator sum over the whole eager training step (energy of one step);
- backward/forward ratio: the backward operators' energy over the forward operators' (textbook: about 2);
- analysis wall time / one step: how many training steps' worth of time one analysis costs.

Energies come from the default backend here (the CPU-time *estimate* on a VM); on a busy machine other
processes inflate them, so read the ratios, and rerun on a quiet machine for figures to quote.
"""

from __future__ import annotations

import statistics
import sys
import time

TARGET = "magneton.examples.tiny_gpt:train_workload"


def one_step_s(repeats: int) -> float:
    """Median wall time of one eager training step on the user's own model (forward, backward, AdamW)."""
    import torch.nn.functional as F

    from magneton.workload import load_any_target

    step = load_any_target(TARGET)
    model, optimizer = step.model, step.optimizer
    (input_ids,) = step.args
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        logits = model(input_ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])  # the first step allocates the optimizer state


def main() -> None:
    from magneton.pipeline import AnalyzeOptions, analyze_target

    quick = "--quick" in sys.argv
    options = AnalyzeOptions.from_flat(
        trials=2 if quick else 5, min_window_s=0.005 if quick else None, rules=False, expected=False
    )
    step_s = one_step_s(3 if quick else 10)
    started = time.perf_counter()
    report = analyze_target(TARGET, options)
    wall_s = time.perf_counter() - started
    phases = {p.phase: p for p in report.phases or []}
    forward_j, backward_j = phases["forward"].energy_j, phases["backward"].energy_j
    print(
        f"bench_train ({'quick' if quick else 'full'}): {TARGET}, backend {report.backend.name} "
        f"({report.energy_provenance.kind}), {report.trials} trials"
    )
    print(f"  whole step             {report.total_energy_j:.4g} J per step, {report.total_time_s * 1e3:.1f} ms")
    print(f"  coverage               {report.coverage if report.coverage is not None else float('nan'):.2f}")
    for name, phase in phases.items():
        print(f"  {name:<22} {phase.energy_j:.4g} J  ({phase.share:.0%} of operator sum, {phase.count} operators)")
    ratio = backward_j / forward_j if forward_j > 0 else float("nan")
    print(f"  backward / forward     {ratio:.2f}")
    print(f"  analysis wall time     {wall_s:.1f} s = {wall_s / step_s:.0f} x one eager step ({step_s * 1e3:.1f} ms)")
    if report.contention is not None and report.contention.warning:
        print(f"  caveat: {report.contention.warning}")


if __name__ == "__main__":
    main()
