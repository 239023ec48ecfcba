"""Rules inside analyze: source matches tied to measured operators, potential matches, graph rules in libraries."""

from __future__ import annotations

from pathlib import Path

import pytest

from magneton.capture import capture
from magneton.diagnosis import diagnose_nodes, expression_at, finding_source
from magneton.findings import sort_findings
from magneton.rules.analysis import rule_findings
from magneton.workload import load_target

DATA = Path(__file__).parent / "data" / "rules_analyze"
TARGET = f"{DATA / 'workload.py'}:workload"


@pytest.fixture(scope="module")
def graph():  # type: ignore[no-untyped-def]
    return capture(load_target(TARGET))


def _energies(graph, by_op=None):  # type: ignore[no-untyped-def]
    # Hand-made energies: each operator costs 1 J except the ones named, so ranking is predictable.
    by_op = by_op or {}
    return {n.id: by_op.get(n.op, 1.0) for n in graph.nodes}


def test_source_and_graph_findings(graph) -> None:  # type: ignore[no-untyped-def]
    findings, notes = rule_findings(graph, _energies(graph), TARGET, provenance="estimated")
    assert not notes
    by_rule = {f.rule: f for f in findings}
    count = by_rule["MAG117"]
    assert count.source is not None and count.source.file.endswith("workload.py") and count.source.line == 19
    assert count.source.expression == "(h != 0).sum()"
    assert count.nodes and count.energy_j > 0 and not count.potential
    assert count.fix is not None and "torch.count_nonzero(h)" in count.fix
    assert "estimated" in count.energy_provenance and "upper bound" in count.excess_provenance

    gelu = by_rule["MAG201"]  # the library's GELU: found in the graph
    assert gelu.source is not None and "site-packages" in gelu.source.file and gelu.source.line == 9
    assert gelu.source.expression is not None and "0.044715" in gelu.source.expression
    assert gelu.call_site is not None and gelu.call_site.file.endswith("workload.py") and gelu.call_site.line == 18

    unused = by_rule["MAG115"]  # a method that never ran
    assert unused.potential and unused.energy_j == 0 and not unused.nodes
    assert findings.index(unused) == len(findings) - 1  # potential findings rank after every measured one


def test_findings_are_ranked_by_energy(graph) -> None:  # type: ignore[no-untyped-def]
    findings, _ = rule_findings(graph, _energies(graph, {"aten.tanh.default": 100.0}), TARGET)
    assert [f.rule for f in findings][:2] == ["MAG201", "MAG117"]
    heavy_count = _energies(graph, {"aten.ne.Scalar": 500.0, "aten.sum.default": 500.0})
    findings, _ = rule_findings(graph, heavy_count, TARGET)
    assert findings[0].rule == "MAG117"
    assert findings == sort_findings(findings)


def test_diagnose_nodes_for_other_detectors(graph) -> None:  # type: ignore[no-untyped-def]
    tanh = next(n for n in graph.nodes if n.op == "aten.tanh.default")
    source, site = diagnose_nodes(graph, [tanh.id])
    assert source is not None and source.line == 9 and site is not None and site.line == 18


def test_expression_at_multiline(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "import torch\nout = torch.cat(\n    [torch.softmax(a, -1),\n     b],\n    dim=0,\n)\n", encoding="utf-8"
    )
    assert expression_at(str(path), 2) == ("torch.cat(\n    [torch.softmax(a, -1),\n     b],\n    dim=0,\n)", 2, 6)
    assert expression_at(str(path), 3)[0] == "[torch.softmax(a, -1),\n     b]"  # type: ignore[index]
    source = finding_source(str(path), 2)
    assert source.end_line == 6 and source.code == "out = torch.cat("


def test_analyze_attaches_rule_findings() -> None:
    from magneton.pipeline import AnalyzeOptions, analyze_target

    # The measured detectors (their verdicts depend on the machine's load) have their own tests.
    measured_off = {"overhead": False, "allocator_check": False, "expected": False}
    options = AnalyzeOptions.from_flat(
        backend="estimate", trials=1, warmup_calls=1, min_window_s=0.01, idle_s=0.05, **measured_off
    )
    report = analyze_target(TARGET, options)
    rules = [f.rule for f in report.findings]
    assert "MAG117" in rules and "MAG201" in rules and rules[-1] == "MAG115"
    first = report.findings[0]
    assert first.kind == "rule" and first.source is not None and first.energy_j > 0
    assert first.provenance == report.energy_provenance
    assert report.to_dict()["findings"][0]["rule"] == first.rule  # the JSON carries them
    quiet = AnalyzeOptions.from_flat(
        backend="estimate", trials=1, min_window_s=0.01, idle_s=0.05, rules=False, **measured_off
    )
    assert not any(f.kind == "rule" for f in analyze_target(TARGET, quiet).findings)


def test_attach_sources_fills_any_detectors_finding(graph) -> None:  # type: ignore[no-untyped-def]
    import msgspec

    from magneton.diagnosis import attach_sources
    from magneton.findings import Finding

    tanh = next(n for n in graph.nodes if n.op == "aten.tanh.default")
    anomaly = Finding(
        kind="anomaly", rule=None, category=None, title="slow tanh", energy_j=1.0, excess_energy_j=0.5, share=0.1,
        source=None, nodes=(tanh.id,),
    )  # fmt: skip

    class FakeReport(msgspec.Struct, frozen=True):
        nodes: list
        findings: list

    filled = attach_sources(FakeReport(nodes=[], findings=[anomaly]), graph)  # type: ignore[arg-type]
    (finding,) = filled.findings
    assert finding.source is not None and finding.source.line == 9 and "0.044715" in (finding.source.expression or "")
    assert finding.call_site is not None and finding.call_site.line == 18
