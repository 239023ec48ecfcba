"""The expected-energy stage for real: `magneton calibrate --quick`, then TinyGPT analysed against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick calibration measured by the CLI, as a user runs it, into a private cache folder."""
    cache = tmp_path_factory.mktemp("calibration")
    env = {**os.environ, "MAGNETON_CACHE_DIR": str(cache), "COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "magneton", "calibrate", "--quick", "--backend", "estimate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "held-out  left-out shapes: MdAPE" in result.stdout
    assert "real-model nodes: not measured (--quick or --no-models)" in result.stdout
    assert "ESTIMATED" in result.stdout
    assert len(list(cache.glob("calibration-*.json"))) == 1
    return cache


def test_analyze_labels_every_measured_node_with_a_prediction(quick_cache: Path, monkeypatch) -> None:
    # Whether a clean model shows no anomaly >= 5% depends on the regression's accuracy on this machine's noisy
    # measurements: tests/bench/bench_expected.py reports the false anomalies of TinyGPT, BERT and a UNet.
    from magneton.examples.tiny_gpt import build_tiny_gpt
    from magneton.pipeline import AnalyzeOptions, analyze_workload
    from magneton.workload import Workload

    monkeypatch.setenv("MAGNETON_CACHE_DIR", str(quick_cache))
    model, args = build_tiny_gpt(n_layer=2)
    options = AnalyzeOptions.from_flat(backend="estimate", trials=3, expected=True)
    report = analyze_workload(Workload(model, args), "tiny_gpt", options)
    assert report.expected is not None and report.expected.enabled
    assert report.expected.calibration_sweep == "quick"
    assert not report.expected.notes or "quick sweep" not in " ".join(report.expected.notes)  # the cached one
    measured = [n for n in report.nodes if n.energy_j > 0]
    assert all(n.expected_energy_j and n.expected_energy_j > 0 for n in measured)
    assert all(n.expected_provenance and n.expected_provenance.kind == "predicted" for n in measured)
    for finding in (f for f in report.findings if f.kind == "anomaly"):
        assert finding.excess_energy_j > 0 and finding.explanation and finding.source is not None
