"""The public Python API: magneton.analyze, Report.to_json/write/show, magneton.load_report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

import magneton
from magneton import MagnetonError, Report

FAST = {"backend": "estimate", "trials": 2, "min_window_s": 0.002, "idle_s": 0.01}


@pytest.fixture(scope="module")
def report() -> Report:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
        x = torch.randn(4, 16)
    return magneton.analyze(model, x, **FAST)


def test_analyze_returns_a_typed_report(report: Report) -> None:
    assert isinstance(report, Report)
    assert report.target == "torch.nn.modules.container:Sequential"
    assert report.energy_provenance.kind == "estimated"
    assert report.energy_provenance.formula == "energy_j = process_cpu_time_s * watts_per_core"
    assert report.trials == 2
    assert [n.op for n in report.nodes] == ["aten.linear.default", "aten.relu.default", "aten.linear.default"]
    assert all(n.provenance == report.energy_provenance for n in report.nodes)
    assert all(n.expected_energy_j is None and n.expected_provenance is None for n in report.nodes)
    assert report.noisy_relative_spread == 0.25
    assert report.total_energy_ci_confidence == 0.5  # two trials: [min, max] covers the median with p = 1/2


def test_to_json_write_and_load_round_trip(report: Report, tmp_path: Path) -> None:
    data = json.loads(report.to_json())
    assert data["schema"] == "magneton.report/1"
    assert data["nodes"][0]["provenance"]["kind"] == "estimated"
    path = report.write(tmp_path / "r.json")
    assert magneton.load_report(path) == report


def test_show_renders_the_terminal_view(report: Report) -> None:
    out = io.StringIO()
    report.show(Console(file=out, width=100, color_system=None))
    text = out.getvalue()
    assert "Magneton energy report" in text and "torch.nn.modules.container:Sequential" in text
    assert "All energies are ESTIMATED" in text


def test_kwargs_and_target_label(tmp_path: Path) -> None:
    def scaled(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return torch.tanh(x * scale)

    report = magneton.analyze(scaled, (torch.randn(8, 8),), {"scale": 3.0}, target="mine", **FAST)
    assert report.target == "mine"
    ops = [n.op for n in report.nodes]
    assert "aten.tanh.default" in ops and "aten.mul.Tensor" in ops


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trails": 3}, "unknown option 'trails' (did you mean 'trials'?)"),
        ({"trials": 0}, "option trials=0: must be an integer >= 1"),
        ({"trials": 2.5}, "option trials=2.5: must be an integer >= 1"),
        ({"backend": "gpu"}, "option backend='gpu': choose one of auto, nvml, rapl, estimate, replay"),
        ({"min_window_s": -1}, "option min_window_s=-1: must be a number > 0"),
        ({"cpu_watts_per_core": "lots"}, "option cpu_watts_per_core='lots': must be a number > 0"),
        ({"trace": 3}, "option trace=3: must be a path"),
        ({"trace": "a.json", "trace_path": "b.json"}, "option 'trace_path' given twice"),
        ({"remeasure_contended": "yes"}, "option remeasure_contended='yes': must be True or False"),
        ({"max_rounds": -3}, "option max_rounds=-3: must be an integer >= 0"),
        ({"noisy_relative_spread": "wide"}, "option noisy_relative_spread='wide': must be a number >= 0"),
        ({"allocator": "jemalloc?"}, "option allocator='jemalloc?': choose one of"),
    ],
)
def test_bad_options_are_clear_errors(options: dict, message: str) -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(MagnetonError) as info:
        magneton.analyze(model, torch.randn(1, 2), **options)
    assert message in str(info.value)


def test_not_a_callable_is_a_clear_error() -> None:
    with pytest.raises(MagnetonError, match="must be a model or function, got Tensor"):
        magneton.analyze(torch.randn(2), ())  # type: ignore[arg-type]


def test_cli_aliases_match_the_flags() -> None:
    from magneton.api import make_options

    options = make_options(cpu_watts_per_core=3.5, trace="t.json", warmup_calls=0)
    assert options.backend_options.watts_per_core == 3.5
    assert options.backend_options.trace_path == Path("t.json")
    assert options.energy_pass.warmup_calls == 0
