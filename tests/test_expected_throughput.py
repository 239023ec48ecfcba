"""The throughput lines: achieved GFLOP/s and GB/s, and the roofline position, from calibration's peaks."""

from __future__ import annotations

import io

import msgspec
from rich.console import Console

from magneton.expected.terminal import render_throughput
from magneton.report.model import ExpectedSummary, Report
from tests.golden.report_fixture import golden_report


def _render(report: Report) -> str:
    out = io.StringIO()
    render_throughput(report, Console(file=out, width=300, color_system=None))
    return out.getvalue()


def _with_work(report: Report, flops: int, bytes_: int) -> Report:
    nodes = [msgspec.structs.replace(n, flops=flops, bytes=bytes_) for n in report.nodes]
    return msgspec.structs.replace(report, nodes=nodes)


def test_throughput_and_roofline_position() -> None:
    report = _with_work(golden_report(), flops=2_000_000_000, bytes_=10_000_000)
    node = max(report.nodes, key=lambda n: n.energy_j)
    summary = ExpectedSummary(enabled=True, peak_flops_per_s=100e9, peak_bytes_per_s=10e9)
    text = _render(msgspec.structs.replace(report, expected=summary))
    first = text.splitlines()[1]
    achieved = 2e9 / node.time_s
    assert f"{achieved / 1e9:.2f} GFLOP/s" in first
    assert "200.0 FLOP/B" in first
    # 200 FLOP/B x 10 GB/s = 2 TFLOP/s > the 100 GFLOP/s ceiling: compute-bound, measured against 100 GFLOP/s.
    assert f"{achieved / 100e9:.0%} of roofline (compute-bound)" in first
    assert ("faster than anything calibration measured" in first) == (achieved > 100e9)
    assert "roofline of this machine from calibration: 100.0 GFLOP/s, 10.0 GB/s" in text


def test_memory_bound_operator() -> None:
    report = _with_work(golden_report(), flops=1_000, bytes_=4_000_000)
    summary = ExpectedSummary(enabled=True, peak_flops_per_s=100e9, peak_bytes_per_s=10e9)
    text = _render(msgspec.structs.replace(report, expected=summary))
    assert "(memory-bound)" in text.splitlines()[1]


def test_repeated_layers_fold_and_no_peaks_means_no_roofline() -> None:
    report = _with_work(golden_report(), flops=1_000_000, bytes_=1_000_000)
    text = _render(report)  # no calibration: rates only
    assert "GFLOP/s" in text and "roofline" not in text
    assert " x4 at " in text  # the 4 layers of the fixture fold into one row
    assert "per call (estimated)" in text  # every energy says how it was obtained
