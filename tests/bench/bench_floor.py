"""Energy-pass wall time against its floor (run by `just bench`). Prints figures; asserts nothing.

The floor is what the measurement cannot go below: the idle window plus every window at exactly
its minimum (trials x (whole pass + distinct signatures x minimum window) with fixed trials).
The ratio wall / floor is the time the pass wastes on warm-up, calibration, operand copies and
interpreter overhead. Models: TinyGPT (4 layers) and an MLP with 96 distinct operator signatures.

    python tests/bench/bench_floor.py [--quick]

Run it with PYTHONPATH pointing at another checkout to get that checkout's figures ("before").
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any


def mlp_96() -> tuple[Any, tuple[Any, ...]]:
    """48 Linear+ReLU layers of distinct widths: 96 distinct signatures."""
    import torch
    from torch import nn

    widths = [64 + 4 * i for i in range(49)]
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    torch.manual_seed(0)
    return nn.Sequential(*layers).eval(), (torch.randn(32, widths[0]),)


def tiny_gpt() -> tuple[Any, tuple[Any, ...]]:
    from magneton.examples.tiny_gpt import build_tiny_gpt

    return build_tiny_gpt()


def measure(name: str, build: Any, trials: int, repeats: int) -> None:
    import torch

    from magneton.capture import capture
    from magneton.measure.backends.estimate import EstimateBackend
    from magneton.measure.energy_pass import PassOptions, run_energy_pass
    from magneton.workload import Workload

    model, args = build()
    workload = Workload(model, args)
    with torch.no_grad():
        graph = capture(workload)
    backend = EstimateBackend()
    options = PassOptions(trials=trials)
    fields = {f for f in PassOptions.__dataclass_fields__}
    if "min_trials" in fields:  # fixed trials, so before and after take the same windows
        options = PassOptions(trials=trials, min_trials=trials)
    ratios, coverages = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run_energy_pass(graph, workload, backend, options)
        wall_s = time.perf_counter() - start
        min_window_s = result.min_window_s
        idle_s = options.idle_s if options.idle_s is not None else max(0.2, min_window_s)
        formula_floor_s = idle_s + trials * (options.forward_window_s + result.unique_signatures * min_window_s)
        floor_s = getattr(result, "floor_s", 0.0) or formula_floor_s
        ratios.append(wall_s / floor_s)
        coverages.append(result.coverage)
    print(
        f"{name}: {result.unique_signatures} distinct signatures, {trials} trials, min window "
        f"{min_window_s * 1e3:.0f} ms: floor {floor_s:.2f} s, energy pass {wall_s:.2f} s; "
        f"wall/floor median {statistics.median(ratios):.2f}x over {repeats} runs "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}); coverage {statistics.median(coverages):.2f}"
    )
    contention = getattr(result, "contention", None)
    if contention is not None:
        print(
            f"  contention: {contention.contended_windows}/{contention.windows} windows contended, "
            f"{contention.remeasured_windows} re-measured, others kept "
            f"{contention.others_busy_cores or 0:.1f} cores busy (median)"
        )


def main() -> None:
    quick = "--quick" in sys.argv
    trials, repeats = (2, 1) if quick else (5, 3)
    import magneton

    print(f"magneton from {magneton.__file__}; estimate backend (CPU time); the machine may be busy")
    measure("TinyGPT 4 layers", tiny_gpt, trials, repeats)
    measure("MLP, 96 signatures", mlp_96, trials, repeats)


if __name__ == "__main__":
    main()
