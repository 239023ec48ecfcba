"""Planted anomalies are flagged at the right line with the right explanation (deterministic fake energies)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from expected_helpers import cost_j, synthetic_calibration

from magneton.capture import capture
from magneton.expected.anomalies import AnomalyOptions
from magneton.expected.counterfactual import IDEAL_SUFFIX, ORIGINAL_SUFFIX, counterfactual_replays
from magneton.expected.pipeline import ExpectedOptions, add_expected_energy
from magneton.measure.backends import BackendChoice
from magneton.measure.energy_pass import FORWARD_KEY, run_energy_pass
from magneton.measure.options import PassOptions
from magneton.report.build import build_report
from magneton.workload import load_target

PLANTED = Path(__file__).resolve().parent / "workloads" / "planted_anomalies.py"


def analyse(
    target: str,
    fake_backend_cls,
    multiplier: Callable[[str], float] = lambda key: 1.0,
    ideal_ratio: Callable[[str], float] = lambda key: 1.0,
    options: AnomalyOptions | None = None,
) -> dict:
    """Capture, measure with energies from a known cost formula, then run the expected stage."""
    workload = load_target(f"{PLANTED}:{target}")
    with torch.no_grad():
        graph = capture(workload)
    cost = {n.signature: cost_j(n.flops, n.bytes) * multiplier(n.op) for n in graph.nodes if not n.zero_cost}
    total = sum(cost[n.signature] for n in graph.nodes if not n.zero_cost)

    def energy_per_call(key: str) -> float:
        if key == FORWARD_KEY:
            return total
        if key.endswith(IDEAL_SUFFIX):
            signature = key.removesuffix(IDEAL_SUFFIX)
            return cost[signature] * ideal_ratio(signature)
        return cost[key.removesuffix(ORIGINAL_SUFFIX)]

    backend = fake_backend_cls(energy_per_call, min_window_s=0.0)
    pass_options = PassOptions(
        trials=1,
        min_trials=1,
        warmup_calls=0,
        forward_warmup_calls=0,
        forward_window_s=1e-3,
        replay_working_set_bytes=0,
    )
    result = run_energy_pass(graph, workload, backend, pass_options)
    report = build_report(target, graph, result, BackendChoice(backend, "test"), pass_options)
    expected = ExpectedOptions(enabled=True, calibration=synthetic_calibration(), anomaly=options or AnomalyOptions())
    report = add_expected_energy(report, graph, workload, result, backend, pass_options, expected, say=lambda _m: None)
    return report.to_dict()


def anomalies(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["kind"] == "anomaly"]


def test_transposed_copy_into_matmul(fake_backend_cls, marker_line) -> None:
    report = analyse("transposed_copy", fake_backend_cls)
    [finding] = anomalies(report)
    assert finding["source"]["line"] == marker_line(PLANTED, "planted: transposed-copy")
    assert finding["title"] == "aten.contiguous.default: transposed copy made on every call"
    assert "transposed copy made on every call" in finding["explanation"]
    assert "strides (1, 512)" in finding["explanation"] and "aten.matmul.default" in finding["explanation"]
    assert "aten.t.default at" in finding["suggestion"] and "weight`" in finding["suggestion"]
    assert finding["excess_energy_j"] == pytest.approx(finding["energy_j"])
    assert finding["excess_provenance"] == "estimated"  # the fake backend's provenance: a replay, not a model
    assert finding["share"] >= 0.02


def test_norm_over_strided_view(fake_backend_cls, marker_line) -> None:
    report = analyse("strided_norm", fake_backend_cls, ideal_ratio=lambda sig: 0.7 if "layer_norm" in sig else 1.0)
    [finding] = anomalies(report)
    line = marker_line(PLANTED, "planted: strided-norm")
    assert finding["source"]["line"] == line
    assert finding["title"] == "aten.layer_norm.default: badly laid-out input"
    assert "input 0 is a non-contiguous view (shape (8, 128, 256), strides (32768, 1, 128))" in finding["explanation"]
    assert "30% less" in finding["explanation"]
    assert "aten.transpose.int at" in finding["suggestion"] and "x.transpose(1, 2)" in finding["suggestion"]
    assert finding["excess_energy_j"] == pytest.approx(0.3 * finding["energy_j"])
    node = next(n for n in report["nodes"] if n["id"] in finding["nodes"])
    assert node["ideal_layout_provenance"]["kind"] == "estimated" and node["ideal_layout_gap"] == pytest.approx(0.3)
    assert node["ideal_layout_energy_j"] == pytest.approx(0.7 * node["energy_j"])


def test_small_layout_gap_is_not_flagged(fake_backend_cls) -> None:
    report = analyse("strided_norm", fake_backend_cls, ideal_ratio=lambda sig: 0.95 if "layer_norm" in sig else 1.0)
    assert anomalies(report) == []
    node = next(n for n in report["nodes"] if n["op"] == "aten.layer_norm.default")
    assert node["ideal_layout_gap"] == pytest.approx(0.05)  # measured and reported, below the 10% threshold


def test_materialised_broadcast(fake_backend_cls, marker_line) -> None:
    report = analyse("materialised_broadcast", fake_backend_cls)
    [finding] = anomalies(report)
    assert finding["source"]["line"] == marker_line(PLANTED, "planted: materialised-broadcast")
    assert finding["title"] == "aten.contiguous.default: broadcast operand materialised"
    assert "broadcast operand materialised" in finding["explanation"]
    assert "expanded broadcast view (shape (512, 1024), strides (0, 1))" in finding["explanation"]
    assert "aten.add.Tensor" in finding["explanation"]
    assert "aten.expand.default at" in finding["suggestion"]


def test_regression_flags_a_node_far_above_its_prediction(fake_backend_cls, marker_line) -> None:
    # The calibration's formula predicts the matmul; measuring it at 6x its formula cost is an anomaly.
    report = analyse("clean", fake_backend_cls, multiplier=lambda op: 6.0 if op == "aten.linear.default" else 1.0)
    [finding] = anomalies(report)
    assert finding["title"] == "aten.linear.default: far above its expected energy"
    assert finding["excess_provenance"] == "predicted"
    assert "x the expected energy of a matmul of this shape" in finding["explanation"]
    assert "of this machine's matmul throughput" in finding["explanation"]
    assert finding["details"]["model"].startswith("hist-gradient-boosting")


def test_clean_model_has_no_anomaly(fake_backend_cls) -> None:
    report = analyse("clean", fake_backend_cls)
    assert anomalies(report) == []
    measured = [n for n in report["nodes"] if n["energy_j"] > 0]
    assert measured and all(n["expected_energy_j"] > 0 for n in measured)
    assert all(n["expected_provenance"]["kind"] == "predicted" for n in measured)
    assert all(n["expected_provenance"]["model"].startswith("hist-gradient-boosting") for n in measured)
    assert report["expected"]["model"].startswith("hist-gradient-boosting")
    assert {h["on"] for h in report["expected"]["held_out"]} == {"left-out shapes", "real-model nodes"}


def test_share_threshold(fake_backend_cls) -> None:
    report = analyse("transposed_copy", fake_backend_cls, options=AnomalyOptions(min_share=0.9))
    assert anomalies(report) == []


def test_counterfactual_replays_measure_both_layouts_alternately() -> None:
    from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading

    keys: list[str] = []

    class Spy(EnergyBackend):
        def info(self) -> BackendInfo:
            return BackendInfo("spy", "estimated", "test", 0.0)

        def open_window(self):
            return None

        def close_window(self, window):
            return WindowReading(1.0, 1.0)

        def measure_timed(self, key, call, rounds, min_window_s, max_rounds, calls_per_round=1):
            call()
            keys.append(key)
            calls = calls_per_round
            return WindowReading(2.0 * calls if key.endswith(ORIGINAL_SUFFIX) else 1.0 * calls, 1e-3 * calls), 1

    workload = load_target(f"{PLANTED}:strided_norm")
    graph = capture(workload)
    norm = next(n for n in graph.nodes if n.op == "aten.layer_norm.default")
    linear = next(n for n in graph.nodes if n.op == "aten.linear.default")
    options = PassOptions(warmup_calls=0, replay_working_set_bytes=0, remeasure_contended=False)
    results = counterfactual_replays(graph, workload, Spy(), [norm.id, linear.id], options, trials=2)
    assert set(results) == {norm.id}  # the linear reads contiguous inputs: nothing to replay
    assert results[norm.id].bad_inputs == (0,) and results[norm.id].gap == pytest.approx(0.5)
    suffixes = [key.rsplit("|", 1)[1] for key in keys]
    assert suffixes == ["as-laid-out", "ideal-layout", "ideal-layout", "as-laid-out"]  # alternating trials


def test_well_laid_out_copies_and_layout_preserving_clones() -> None:
    from magneton.expected.counterfactual import well_laid_out
    from magneton.measure.energy_pass import clone_preserving_layout

    strided = torch.randn(4, 8)[:, ::2]
    expanded = torch.randn(6).expand(3, 6)
    fixed = well_laid_out(([strided, expanded], {"w": torch.randn(2, 3).t()}))
    assert all(t.is_contiguous() for t in [*fixed[0][0], fixed[1]["w"]])
    for tensor in (strided, expanded):
        copy = clone_preserving_layout(tensor)
        assert copy.stride() == tensor.stride() and torch.equal(copy, tensor)
        assert copy.untyped_storage().data_ptr() != tensor.untyped_storage().data_ptr()


def test_expected_stage_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGNETON_EXPECTED", "0")
    assert not ExpectedOptions().is_enabled()
    assert ExpectedOptions(enabled=True).is_enabled()
    monkeypatch.setenv("MAGNETON_EXPECTED", "1")
    assert ExpectedOptions().is_enabled()
    assert not ExpectedOptions(enabled=False).is_enabled()


def test_an_uncalibrated_op_in_a_catch_all_family_gets_no_regression_verdict(fake_backend_cls) -> None:
    # gelu is calibrated (synthetic points): 6x its cost is an anomaly. The same excess on an op calibration never
    # measured (tanh, which op_family files under the catch-all "unary") is no evidence: elementwise costs say
    # nothing about it.
    gelu = analyse("gelu", fake_backend_cls, multiplier=lambda op: 30.0 if op == "aten.gelu.default" else 1.0)
    assert [f["title"] for f in anomalies(gelu)] == ["aten.gelu.default: far above its expected energy"]
    tanh = analyse("tanh", fake_backend_cls, multiplier=lambda op: 30.0 if op == "aten.tanh.default" else 1.0)
    assert anomalies(tanh) == []


def test_a_counterfactual_gap_that_not_every_pair_saw_is_no_finding() -> None:
    from magneton.expected.anomalies import NodeEvidence, find_anomalies
    from magneton.expected.counterfactual import Counterfactual

    graph = capture(load_target(f"{PLANTED}:strided_norm"))
    norm = next(n for n in graph.nodes if n.op == "aten.layer_norm.default")

    def layout_findings(paired_gaps: tuple[float, ...]) -> list[str]:
        cf = Counterfactual(norm.id, 1.0, 0.75, 1e-3, 7.5e-4, (0,), len(paired_gaps), paired_gaps=paired_gaps)
        evidence = [NodeEvidence(norm, energy_j=1.0, time_s=1e-3, counterfactual=cf)]
        findings = find_anomalies(graph, evidence, 2.0, None, AnomalyOptions(), "estimated")
        return [f.title for f in findings]

    assert layout_findings((0.3, 0.22, 0.25, 0.27, 0.2))  # a 25% saving seen in every pair of windows
    assert not layout_findings((0.45, 0.25, -0.05, 0.3, 0.12))  # the same median, but one pair saw none


def test_attention_reads_heads_transposed_from_the_projection_natively() -> None:
    from torch import nn

    from magneton.expected.counterfactual import needs_counterfactual
    from magneton.workload import Workload

    class Heads(nn.Module):
        def forward(self, qkv: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
            b, s, _ = qkv.shape
            q, k, v = qkv.view(b, s, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)  # rows of 8 stay contiguous
            native = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            strided = odd.transpose(-1, -2)  # rows are columns of the stored tensor: a copy would help
            return native + torch.nn.functional.scaled_dot_product_attention(strided, strided, strided)

    graph = capture(Workload(Heads(), (torch.randn(2, 16, 48), torch.randn(2, 2, 8, 16))))
    attention = [n for n in graph.nodes if "attention" in n.op]
    assert [needs_counterfactual(n) for n in attention] == [False, True]
