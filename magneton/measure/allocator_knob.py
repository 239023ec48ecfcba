"""The allocator as a measured configuration knob.

glibc malloc's defaults trim the heap top and hand large blocks to fresh mmaps, so a
program that allocates big temporaries page-faults them in again on every call. Fixing
the thresholds (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, or running
under jemalloc/tcmalloc) removes that cost. ``mallopt`` cannot be undone, so the
alternative is measured in a child process: it loads the target afresh, measures the
whole pass under the default allocator (settled as the analysis was, unless it measured
the process as found), then fixes the thresholds (as the environment
variables would) and measures again. Both halves run in the same fresh process, so the
difference is the allocator's and not the analysing process's history.

It runs only where it can matter: a CPU workload, glibc without tuning, and page faults
explaining at least ``MIN_FAULT_SHARE`` of the whole pass (faults are what the thresholds
change). A change of ``FINDING_THRESHOLD`` or more becomes a Misconfiguration finding
(kind ``anomaly``: no catalog rule; the counterfactual measurement is the evidence), built by
``magneton.pass_findings`` (measurement code knows nothing of findings).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from magneton.measure.allocator import MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES
from magneton.measure.options import Allocator

FINDING_THRESHOLD = 0.10  # relative change of the whole pass that makes a finding
MIN_FAULT_SHARE = 0.03  # below this share of the pass spent in page faults the check is skipped
CHILD_TIMEOUT_S = 600.0

REMEDY = (
    f"run with MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD_BYTES} MALLOC_TRIM_THRESHOLD_={TRIM_THRESHOLD_BYTES} "
    "(glibc keeps large blocks on the heap instead of returning and re-faulting them), or preload "
    "jemalloc or tcmalloc (LD_PRELOAD=libjemalloc.so / libtcmalloc.so), as PyTorch's CPU performance "
    "tuning guide recommends"
)


@dataclass(frozen=True)
class KnobResult:
    default_energy_j: list[float]  # per call, under glibc's defaults, in the child
    steady_energy_j: list[float]  # per call, thresholds fixed, in the same child
    default_faults_per_call: float
    steady_faults_per_call: float

    @property
    def default_median_j(self) -> float:
        return statistics.median(self.default_energy_j)

    @property
    def steady_median_j(self) -> float:
        return statistics.median(self.steady_energy_j)

    @property
    def relative_change(self) -> float:
        """(default - steady) / default: positive when fixing the thresholds saves energy."""
        default = self.default_median_j
        return (default - self.steady_median_j) / default if default > 0 else 0.0


def should_check(device: str, allocator: str, fault_share: float, backend_name: str) -> str | None:
    """Why the check is skipped, or None when it should run."""
    if not device.startswith("cpu"):
        return "allocator check skipped: the workload runs on an accelerator"
    if backend_name not in ("estimate", "rapl"):
        return f"allocator check skipped: the {backend_name} backend cannot run a child measurement"
    if not allocator.startswith("glibc malloc") or "with default thresholds" not in allocator:
        return f"allocator check skipped: the process runs {allocator}"
    if fault_share < MIN_FAULT_SHARE:
        return (
            f"allocator check skipped: page faults explain {fault_share:.1%} of the whole pass "
            f"(< {MIN_FAULT_SHARE:.0%}), so malloc's thresholds cannot change it much"
        )
    return None


def measure_in_child(
    target: str,
    backend: str,
    device: str,
    window_s: float,
    trials: int,
    warmup_calls: int,
    watts: float | None,
    allocator: Allocator = "settled",
) -> KnobResult:
    """Whole-pass energy under the defaults in the state ``allocator`` names, then with fixed thresholds."""
    command = [
        sys.executable,
        "-m",
        "magneton.measure.allocator_knob",
        json.dumps(
            {
                "target": target,
                "backend": backend,
                "device": device,
                "window_s": window_s,
                "trials": trials,
                "warmup_calls": warmup_calls,
                "watts_per_core": watts,
                "allocator": allocator,
            }
        ),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    child = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=env, check=False)
    if child.returncode != 0:
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the allocator child exited {child.returncode}: {tail}")
    data = json.loads(child.stdout.strip().splitlines()[-1])
    return KnobResult(**data)


def _child(spec: dict[str, Any]) -> None:
    import resource

    import torch

    from magneton.measure.allocator import apply_allocator, steady_allocator
    from magneton.measure.backends import BackendOptions, create_backend
    from magneton.workload import load_target, move_workload

    workload = load_target(spec["target"])
    workload = move_workload(workload, spec["device"], spec["target"])
    backend = create_backend(
        spec["backend"], BackendOptions(device=spec["device"], watts_per_core=spec["watts_per_core"])
    ).backend

    def forward() -> None:
        workload.fn(*workload.args, **workload.kwargs)

    def windows() -> tuple[list[float], float]:
        for _ in range(spec["warmup_calls"]):
            forward()
        energies, faults, calls = [], 0, 0
        rounds = 1
        for _ in range(spec["trials"]):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            reading, rounds = backend.measure_timed("__forward__", forward, rounds, spec["window_s"], 100_000)
            faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
            calls += rounds
            energies.append(reading.energy_j / rounds)
        return energies, faults / calls

    with torch.no_grad():
        apply_allocator(spec.get("allocator", "settled"))  # the state the analysis measured in ("steady" never runs)
        default_j, default_faults = windows()
        steady_allocator()
        steady_j, steady_faults = windows()
    print(
        json.dumps(
            {
                "default_energy_j": default_j,
                "steady_energy_j": steady_j,
                "default_faults_per_call": default_faults,
                "steady_faults_per_call": steady_faults,
            }
        )
    )


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
