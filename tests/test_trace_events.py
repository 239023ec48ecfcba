"""``--trace-events``: a Chrome trace of one real forward pass, checked against the trace-event format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_samples import sample_report
from trace_format import TraceFormatError, check_trace

from magneton.report.trace_events import OpTiming, build_trace, record_timeline
from magneton.workload import load_target

TINY_MLP = str(Path(__file__).parent / "workloads" / "tiny_mlp.py") + ":workload"


def _sequential_timings(node_ids: list[str], dur_ns: int = 1000) -> list[OpTiming]:
    return [OpTiming(node_id, i * dur_ns * 2, i * dur_ns * 2 + dur_ns) for i, node_id in enumerate(node_ids)]


def test_checker_rejects_broken_traces() -> None:
    good = {"traceEvents": [{"name": "a", "ph": "X", "ts": 0, "dur": 5, "pid": 1, "tid": 1}]}
    check_trace(good)
    broken = [
        {"traceEvents": [{"name": "a", "ph": "X", "ts": 0, "pid": 1, "tid": 1}]},  # no dur
        {"traceEvents": [{"name": "a", "ph": "Q", "ts": 0, "pid": 1, "tid": 1}]},  # no such phase
        {"traceEvents": [{"name": "c", "ph": "C", "ts": 0, "pid": 1, "args": {"v": "x"}}]},  # counter not numeric
        {"traceEvents": [{"name": "bogus", "ph": "M", "pid": 1, "tid": 0, "args": {}}]},  # unknown metadata
        {"traceEvents": [{"name": "a", "ph": "X", "ts": float("nan"), "dur": 1, "pid": 1, "tid": 1}]},
        {"events": []},
        {
            "traceEvents": [  # partial overlap on one thread
                {"name": "a", "ph": "X", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
                {"name": "b", "ph": "X", "ts": 5, "dur": 10, "pid": 1, "tid": 1},
            ]
        },
    ]
    for doc in broken:
        with pytest.raises(TraceFormatError):
            check_trace(doc)


def test_trace_from_a_report_has_slices_counters_and_module_nesting() -> None:
    report = sample_report(layers=2)
    ids = [node["id"] for node in report["nodes"]]
    trace = build_trace(report, _sequential_timings(ids))
    check_trace(trace)
    events = trace["traceEvents"]
    ops = [e for e in events if e.get("cat") == "operator"]
    assert [e["args"]["node"] for e in ops] == ids
    softmax = next(e for e in ops if e["name"] == "aten.softmax.int")
    assert softmax["args"]["source"].endswith("modeling_gpt2.py:190")
    assert softmax["args"]["module"] == "h.0.attn"
    assert softmax["args"]["energy_j"] == 0.006 and softmax["args"]["energy_provenance"] == "estimated"
    assert softmax["args"]["expected_energy_j"] == 0.002
    modules = {e["args"]["module"]: e for e in events if e.get("cat") == "module"}
    # h.0 spans from the first to the last operator of block 0, and holds h.0.attn.
    block0 = [e for e in ops if e["args"]["module"].startswith("h.0.")]
    assert modules["h.0"]["ts"] == block0[0]["ts"]
    assert modules["h.0"]["ts"] + modules["h.0"]["dur"] == block0[-1]["ts"] + block0[-1]["dur"]
    counters = [e for e in events if e["ph"] == "C" and e["name"].startswith("cumulative")]
    assert counters[-1]["args"]["mJ"] == pytest.approx(1e3 * sum(n["energy_j"] for n in report["nodes"]))
    names = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert any("examples/<gpt2>.py:workload" in name for name in names)


def test_timeline_of_a_real_forward_pass_has_one_slice_per_operator() -> None:
    from magneton.capture import capture

    graph = capture(load_target(TINY_MLP))
    timings = record_timeline(graph)
    assert [t.node_id for t in timings] == [node.id for node in graph.nodes]  # each once: no replays
    for before, after in zip(timings, timings[1:], strict=False):
        assert before.start_ns <= before.end_ns <= after.start_ns
    report = {
        "target": TINY_MLP,
        "backend": {"provenance": "estimated"},
        "nodes": [{"id": n.id, "op": n.op, "energy_j": 1e-6, "module_path": n.module_path} for n in graph.nodes],
    }
    check_trace(build_trace(report, timings))


def test_timeline_restores_inputs_a_program_writes_into(write_target) -> None:
    import torch

    from magneton.capture import capture

    target = write_target(
        """
        import torch

        def step(x):
            x.add_(1.0)
            return x * 2

        def workload():
            return step, (torch.zeros(4),)
        """
    )
    workload = load_target(target)
    graph = capture(workload)
    assert graph.mutates_inputs  # otherwise this test could not fail
    flat = [t for piece in graph.pieces for t in piece.flat_inputs if isinstance(t, torch.Tensor)]
    before = [t.clone() for t in flat]
    record_timeline(graph)
    assert all(torch.equal(a, b) for a, b in zip(flat, before, strict=True))


@pytest.mark.slow
def test_analyze_writes_trace_events_and_html(run_cli, tmp_path: Path) -> None:
    trace_path, html_path = tmp_path / "t.json", tmp_path / "r.html"
    result = run_cli(
        "analyze", TINY_MLP, "--backend", "estimate", "--trials", "2", "--min-window-s", "0.002",
        "--trace-events", str(trace_path), "--html", str(html_path), "--quiet", "--no-overhead", "--no-allocator-check",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    trace = json.loads(trace_path.read_text())
    check_trace(trace)
    ops = [e for e in trace["traceEvents"] if e.get("cat") == "operator"]
    assert len(ops) == 3 and all(e["args"]["energy_provenance"] == "estimated" for e in ops)  # linear, relu, linear
    assert any(e["args"]["energy_j"] > 0 for e in ops)
    assert 'id="icicle"' in html_path.read_text()
    assert f"HTML report written to {html_path}" in result.stdout


def test_trace_events_takes_one_target(run_cli, tmp_path: Path) -> None:
    result = run_cli("analyze", TINY_MLP, TINY_MLP, "--trace-events", str(tmp_path / "t.json"))
    assert result.returncode == 2 and "--trace-events takes a single target" in result.stderr


def test_output_paths_are_checked_before_the_analysis(run_cli, tmp_path: Path) -> None:
    result = run_cli("analyze", TINY_MLP, "--html", str(tmp_path))
    assert result.returncode == 2 and "--html" in result.stderr and "is a folder" in result.stderr
    (tmp_path / "file").write_text("")
    result = run_cli("analyze", TINY_MLP, "--trace-events", str(tmp_path / "file" / "t.json"))
    assert result.returncode == 2 and "--trace-events" in result.stderr and "is not a folder" in result.stderr
