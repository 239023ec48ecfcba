"""The allocator as a measured knob: which allocator runs, the child-process counterfactual, the finding."""

from __future__ import annotations

import platform

import pytest

from magneton.measure.allocator import describe_allocator
from magneton.measure.allocator_knob import (
    FINDING_THRESHOLD,
    MIN_FAULT_SHARE,
    KnobResult,
    measure_in_child,
    should_check,
)
from magneton.pass_findings import allocator_finding

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
DEFAULT_GLIBC = "glibc malloc 2.35 with default thresholds (mmap threshold adapts from 128 KiB, heap top trimmed)"

# Six 16 MiB temporaries alive at once, freed together: more free space at the heap top than glibc's
# trim threshold, so under the defaults every call gives the memory back and faults it in again.
TRIMMED_TEMPORARIES = """
import torch

def f(x):
    parts = [x * float(i) for i in range(6)]
    return sum(p.sum() for p in parts)

def workload():
    return f, (torch.randn(4 * 2**20),)
"""


def test_the_allocator_in_use_is_named() -> None:
    text = describe_allocator()
    if GLIBC:
        assert text.startswith("glibc malloc") and ("default thresholds" in text or "MALLOC_" in text)
    else:
        assert text


def test_check_runs_only_where_it_can_matter() -> None:
    assert should_check("cpu", DEFAULT_GLIBC, 0.2, "estimate") is None
    assert "accelerator" in (should_check("cuda:0", DEFAULT_GLIBC, 0.2, "nvml") or "")
    assert "jemalloc" in (should_check("cpu", "jemalloc (loaded into the process)", 0.2, "estimate") or "")
    skipped = should_check("cpu", DEFAULT_GLIBC, MIN_FAULT_SHARE / 2, "estimate")
    assert skipped is not None and "page faults explain" in skipped
    assert "replay" in (should_check("cpu", DEFAULT_GLIBC, 0.2, "replay") or "")


def test_finding_when_fixed_thresholds_save_enough() -> None:
    saving = KnobResult([1.0, 1.1, 0.9], [0.7, 0.72, 0.69], 15_000.0, 3.0)
    finding = allocator_finding(saving, total_energy_j=2.0, provenance="estimated")
    assert finding is not None
    assert finding.kind == "anomaly" and finding.category == "Misconfiguration" and finding.rule is None
    assert finding.share == pytest.approx(0.30)
    assert finding.excess_energy_j == pytest.approx(0.6)  # 30% of this analysis' 2 J whole pass
    assert "MALLOC_TRIM_THRESHOLD_" in finding.suggestion and "jemalloc" in finding.suggestion
    assert finding.energy_provenance == "estimated"
    small = KnobResult([1.0], [1.0 - FINDING_THRESHOLD / 2], 10.0, 10.0)
    assert allocator_finding(small, 2.0, "estimated") is None
    slower = KnobResult([1.0], [1.5], 10.0, 10.0)  # pinning can also make a program slower: no finding
    assert allocator_finding(slower, 2.0, "estimated") is None


@pytest.mark.skipif(not GLIBC, reason="glibc thresholds only")
def test_child_measures_default_then_fixed_thresholds(write_target, monkeypatch: pytest.MonkeyPatch) -> None:
    # Under glibc's defaults whether these temporaries re-fault on every call is a coin flip per process (the
    # dynamic mmap threshold and where small allocations land: README, "The allocator"). The child inherits
    # an mmap threshold fixed at 1 MiB, the state of a process whose threshold never rose, so its first phase
    # re-faults every call, always; the second phase's fixed thresholds must stop that.
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")
    target = write_target(TRIMMED_TEMPORARIES)
    result = measure_in_child(target, "estimate", "cpu", window_s=0.05, trials=3, warmup_calls=3, watts=10.0)
    assert len(result.default_energy_j) == 3 and len(result.steady_energy_j) == 3
    # Under the defaults every call re-faults ~96 MiB; with fixed thresholds the heap keeps it. How many faults
    # that is depends on the kernel's page size policy (transparent huge pages): only the drop is asserted.
    assert result.default_faults_per_call > 0, result
    assert result.steady_faults_per_call < result.default_faults_per_call / 4, result
