"""Replay claims no more than its trace holds: trials, confidence, provenance, what ran."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

import magneton
from magneton.capture import capture
from magneton.measure.energy_pass import FORWARD_KEY
from magneton.workload import Workload


@pytest.fixture(scope="module")
def model_and_input() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval(), torch.randn(4, 16)


def _hand_written_trace(path: Path, model: torch.nn.Module, x: torch.Tensor) -> Path:
    graph = capture(Workload(model, (x,)))
    linear = next(n for n in graph.nodes if n.op == "aten.linear.default")
    relu = next(n for n in graph.nodes if n.op == "aten.relu.default")
    trials = {linear.signature: [0.5, 0.25, 0.75], relu.signature: [0.125, 0.25, 0.5], FORWARD_KEY: [1.0, 2.0, 1.5]}
    path.write_text(
        json.dumps(
            {
                "schema": "magneton.trace/1",
                "backend": {"name": "rapl", "provenance": "measured", "sensor": "RAPL package-0"},
                "idle_power_w": 2.0,
                "measurements": {k: [{"energy_j": e, "time_s": 0.0625} for e in v] for k, v in trials.items()},
            }
        )
    )
    return path


def test_more_trials_than_the_trace_holds_are_not_claimed(tmp_path: Path, model_and_input) -> None:
    model, x = model_and_input
    trace = _hand_written_trace(tmp_path / "hand.json", model, x)
    report = magneton.analyze(model, x, backend="replay", trace=trace, trials=7, warmup_calls=0, idle_s=0.5)
    assert report.trials == 3
    assert any("--trials 7 lowered to 3" in note for note in report.measurement_notes)
    # Three distinct samples: [min, max] covers the median with p = 3/4, not the 98% of 7 samples.
    assert report.total_energy_ci_confidence == 0.75
    assert report.total_energy_ci_j == (1.0, 2.0)
    assert report.total_energy_trials == 3
    assert {n.ci_confidence for n in report.nodes if n.energy_j > 0} == {0.75}
    assert {n.trials for n in report.nodes if n.energy_j > 0} == {3}
    linear = next(n for n in report.nodes if n.op == "aten.linear.default")
    assert linear.energy_ci_j == (0.25, 0.75)


def test_hand_written_trace_is_replayed_not_measured(tmp_path: Path, model_and_input) -> None:
    model, x = model_and_input
    trace = _hand_written_trace(tmp_path / "hand.json", model, x)
    report = magneton.analyze(model, x, backend="replay", trace=trace, trials=3, warmup_calls=0, idle_s=0.5)
    provenance = report.energy_provenance
    assert provenance.kind == "replayed"
    assert provenance.trace_path == str(trace)
    assert provenance.original is not None and provenance.original.kind == "measured"
    assert provenance.recorded_by_magneton is False
    assert report.backend.provenance == "measured"  # the contract field keeps what the trace recorded
    assert not any("workload was not run" in note for note in report.backend.notes)
    assert any("still runs for capture and calibration" in note for note in report.backend.notes)
    out = io.StringIO()
    report.show(Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert "All energies MEASURED" not in text
    assert "All energies are REPLAYED" in text and "only its claim" in text
    assert "workload was not run" not in text


def test_recorded_trace_says_magneton_recorded_it(tmp_path: Path, model_and_input) -> None:
    model, x = model_and_input
    common = {"trials": 2, "warmup_calls": 1, "idle_s": 0.02, "min_window_s": 0.002}
    trace = tmp_path / "run.json"
    recorded = magneton.analyze(model, x, backend="estimate", record_trace=trace, **common)
    replayed = magneton.analyze(model, x, backend="replay", trace=trace, **common)
    assert replayed.energy_provenance.kind == "replayed"
    assert replayed.energy_provenance.recorded_by_magneton is True
    assert replayed.energy_provenance.original == recorded.energy_provenance
    assert replayed.trials == 2 and not any("lowered" in note for note in replayed.measurement_notes)
