"""The regression and the anomaly detector on real measurements recorded on a quiet machine.

``tests/data/expected/recorded-cpu.json`` holds a default calibration (the sweep and the
real-model check) and one measured analysis of the bundled TinyGPT, written by
``just record-expected`` (tests/record_expected.py). Fitting is deterministic, so these
checks fail exactly when a change to the features, the model or the detector makes them fail
on real data, not when the CI machine is noisy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magneton.expected.anomalies import AnomalyOptions, evidence_for, find_anomalies
from magneton.expected.features import FEATURE_VERSION, NodeFeatures
from magneton.expected.model import Point, fit_and_evaluate

RECORDED = Path(__file__).resolve().parent / "data" / "expected" / "recorded-cpu.json"
# The goal on real-model nodes (estimate backend) is 15%. The recording of 2026-11-27 21:43 UTC (quiet 2-core VM,
# torch 2.13, scikit-learn 1.9) gives 14.1%; seven quiet calibrations of the session spread 7.6-17.4% (the VM's
# run-to-run noise). The limit leaves a point for other scikit-learn versions' fits; a change that makes the model
# worse on real data fails here.
MDAPE_LIMIT = 0.16


@pytest.fixture(scope="module")
def recorded() -> dict:
    data = json.loads(RECORDED.read_text())
    if data["calibration"]["feature_version"] != FEATURE_VERSION:
        pytest.fail(f"{RECORDED} predates feature version {FEATURE_VERSION}: re-record it (`just record-expected`)")
    return data


@pytest.fixture(scope="module")
def evaluation(recorded: dict):  # type: ignore[no-untyped-def]
    return fit_and_evaluate([Point.from_json(p) for p in recorded["calibration"]["points"]])


def test_real_model_accuracy_holds(evaluation) -> None:  # type: ignore[no-untyped-def]
    assert evaluation.models.points >= 40  # TinyGPT, BERT and GPT-2 nodes were all measured
    assert evaluation.models.mdape <= MDAPE_LIMIT, evaluation.describe()
    assert evaluation.models.r2 >= 0.9, evaluation.describe()


def test_clean_tinygpt_has_no_anomaly_holding_five_percent(recorded: dict, evaluation) -> None:  # type: ignore[no-untyped-def]
    from magneton.capture import capture
    from magneton.examples.tiny_gpt import build_tiny_gpt
    from magneton.workload import Workload

    model, args = build_tiny_gpt()
    graph = capture(Workload(model, args))
    measured = recorded["tinygpt"]["nodes"]
    assert set(measured) <= {n.id for n in graph.nodes}, "the recorded node ids no longer match TinyGPT's capture"
    threads = recorded["calibration"]["fingerprint"]["threads"]  # the recording machine's, as analyze would use
    features = {n.id: NodeFeatures.of(n, threads) for n in graph.nodes if n.id in measured and not n.zero_cost}
    ids = list(features)
    expected = dict(zip(ids, evaluation.model.expected_j([features[i] for i in ids]), strict=True))
    energies = {i: (measured[i][0], measured[i][1]) for i in ids}
    low = {i: measured[i][2] for i in ids}
    findings = find_anomalies(
        graph,
        evidence_for(graph, energies, features, expected, {}, low),
        recorded["tinygpt"]["total_energy_j"],
        evaluation.model,
        AnomalyOptions(),
        "estimated",
        model_error=evaluation.headline.mdape,
    )
    large = [f"{f.title} at {f.source.line if f.source else '?'}: {f.share:.1%}" for f in findings if f.share >= 0.05]
    assert not large, large


# A bigger op of one kind may be predicted a little cheaper than a smaller one (what is left of the trees'
# steps after smoothing), never by more than this: well inside the model's error, so no verdict hangs on it.
MAX_DIP = 0.10


def test_bigger_ops_are_not_predicted_cheaper(evaluation) -> None:  # type: ignore[no-untyped-def]
    from expected_helpers import features, matmul_features

    model = evaluation.model
    # Matmuls doubling in size (the "monotonic in size for matmul, on calibrated data"): strictly.
    doubling = model.predict_j([matmul_features(s, s, s) for s in [16, 32, 64, 128, 256, 512, 1024, 2048]])
    assert all(b > a for a, b in zip(doubling, doubling[1:], strict=False)), doubling
    sizes = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]
    curves = {"mm": model.predict_j([matmul_features(s, s, s) for s in sizes])}
    numels = [round(2 ** (k / 2)) for k in range(16, 46)]
    for family, op in (
        ("binary", "add"),
        ("binary", "mul"),
        ("unary", "gelu"),
        ("unary", "tanh"),
        ("norm", "layer_norm"),
    ):
        curves[op] = model.predict_j([features(family, op, n, 8 * n, n) for n in numels])
    for op, energies in curves.items():
        worst = min(b / a for a, b in zip(energies, energies[1:], strict=False))
        assert worst >= 1 - MAX_DIP, (op, worst, energies)
