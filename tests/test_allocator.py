from __future__ import annotations

import platform

import pytest
import torch
from torch import nn

from magneton.capture import capture
from magneton.measure.allocator import steady_allocator
from magneton.measure.energy_pass import PassOptions, run_energy_pass
from magneton.workload import Workload

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds exist only in glibc")
def test_glibc_thresholds_are_fixed_and_reported() -> None:
    note = steady_allocator()
    assert note is not None
    assert "mmap threshold 32 MiB" in note and "trim threshold 1 GiB" in note
    assert steady_allocator() is note  # applied once per process


@pytest.mark.skipif(GLIBC, reason="only off glibc")
def test_other_allocators_are_left_alone() -> None:
    assert steady_allocator() is None


@pytest.mark.parametrize("steady", [True, False])
def test_energy_pass_reports_what_it_did_to_the_allocator(steady: bool, fake_backend_cls) -> None:
    workload = Workload(nn.ReLU(), (torch.randn(8),))
    graph = capture(workload)
    options = PassOptions(trials=1, min_window_s=0.001, idle_s=0.0, allocator="steady" if steady else "process")
    result = run_energy_pass(graph, workload, fake_backend_cls(), options)
    expected = [steady_allocator()] if steady and GLIBC else []
    assert result.notes == expected
