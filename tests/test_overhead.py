"""Framework overhead per module: whole forwards minus children minus operators, with a finding when it dominates."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from torch import nn

from magneton.capture import capture
from magneton.measure.overhead import attribute_overhead, measure_overhead, record_module_calls
from magneton.pipeline import AnalyzeOptions, analyze_workload
from magneton.workload import Workload


class Slow(nn.Module):
    """Tiny arithmetic behind a lot of Python: overhead dominates."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deadline = time.perf_counter() + 0.002
        while time.perf_counter() < deadline:  # Python busy work between operators  # glue
            pass
        return self.lin(x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = Slow(), Slow()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_module_calls_are_recorded_with_parents_and_sources() -> None:
    recorded = record_module_calls(Workload(Net().eval(), (torch.ones(2, 4),)))
    assert recorded is not None and recorded.stateful_inputs == ()
    calls = recorded.calls
    assert [(c.path, c.parent) for c in calls] == [
        ("", None),
        ("a", ""),
        ("a.lin", "a"),
        ("b", ""),
        ("b.lin", "b"),
    ]
    assert calls[1].signature == calls[3].signature  # a and b cost the same: measured once
    assert calls[1].source is not None and calls[1].source.function == "Slow.forward"
    assert record_module_calls(Workload(lambda x: x + 1, (torch.ones(2),))) is None


def test_overhead_is_whole_minus_children_minus_operators() -> None:
    workload = Workload(Net().eval(), (torch.ones(2, 4),))
    graph = capture(workload)
    recorded = record_module_calls(workload)
    assert recorded is not None
    calls = recorded.calls
    measured = {c.signature: {"": 10.0, "a": 4.0, "b": 4.0, "a.lin": 1.0, "b.lin": 1.0}[c.path] for c in calls}
    rows = {row.path: row for row in attribute_overhead(graph, calls, measured, lambda node_id: 0.5, 10.0)}
    # Each Linear runs one operator at 0.5 J; a and b run none of their own.
    assert rows["a.lin"].overhead_energy_j == pytest.approx(0.5)
    assert rows["a"].overhead_energy_j == pytest.approx(3.0)  # 4 - 1 (its Linear)
    assert rows[""].overhead_energy_j == pytest.approx(2.0)  # 10 - 4 - 4
    total = sum(row.overhead_energy_j for row in rows.values()) + 0.5 * len(graph.nodes)
    assert total == pytest.approx(10.0)  # operators plus overhead explain the root's forward


class Cache:
    """State a forward changes, as a transformers DynamicCache does: every call appends to it."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []


class StatefulAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, cache: Cache) -> torch.Tensor:
        cache.keys.append(self.proj(x))
        return torch.cat(cache.keys).sum(0, keepdim=True) + x  # costs more on every call: replay would drift


class StatefulModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = StatefulAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, Cache())


def test_a_module_given_state_it_changes_is_not_replayed_and_its_children_move_up() -> None:
    recorded = record_module_calls(Workload(StatefulModel().eval(), (torch.ones(1, 4),)))
    assert recorded is not None
    # attn takes the cache: not replayed; its Linear (plain inputs) is, under the nearest replayable module.
    assert [(c.path, c.parent) for c in recorded.calls] == [("", None), ("attn.proj", "")]
    assert recorded.stateful_inputs == ("Cache",)
    options = AnalyzeOptions.from_flat(backend="estimate", trials=2, min_window_s=0.005, idle_s=0.01, expected=False)
    report = analyze_workload(Workload(StatefulModel().eval(), (torch.ones(1, 4),)), "cached", options)
    assert report.overhead is not None
    assert {row.module_path for row in report.overhead} == {"", "attn.proj"}
    assert any("were not replayed" in note and "Cache" in note for note in report.measurement_notes)


def test_dominant_overhead_is_reported_with_a_finding() -> None:
    options = AnalyzeOptions.from_flat(
        backend="estimate", trials=3, min_window_s=0.01, forward_window_s=0.02, idle_s=0.01
    )
    report = analyze_workload(Workload(Net().eval(), (torch.ones(2, 4),)), "net", options)
    assert report.overhead is not None and report.explained_coverage is not None
    assert {row.module_path for row in report.overhead} == {"", "a", "b", "a.lin", "b.lin"}
    assert report.coverage is not None and report.coverage < 0.5  # the busy loops are no operator
    # The busy loops live in Slow.forward: a and b carry most of the overhead.
    top = sorted(report.overhead, key=lambda r: -r.overhead_energy_j)[:2]
    assert {row.module_path for row in top} == {"a", "b"}
    finding = next(f for f in report.findings if f.title.startswith("framework overhead dominates"))
    assert finding.category == "Misconfiguration" and "torch.compile" in finding.suggestion
    assert finding.source is not None and finding.source.function == "Slow.forward"


class CachedAttention(nn.Module):
    """Appends to a cache it is handed, as a KV cache does: a replay on the recorded inputs grows it."""

    def forward(self, x: torch.Tensor, cache: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        cache.append(x)
        return mask @ torch.cat(cache)  # (1, n) @ (n, 4): n must match the cache's length


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = CachedAttention()

    def generate(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        cache: list[torch.Tensor] = []
        for step in range(steps):
            x = self.attn(x, cache, torch.ones(1, step + 1))
        return x


def test_a_forward_that_cannot_be_replayed_loses_the_attribution_not_the_analysis() -> None:
    options = AnalyzeOptions.from_flat(
        backend="estimate", trials=1, min_window_s=0.002, forward_window_s=0.01, idle_s=0.01, allocator_check=False
    )
    model = Decoder().eval()
    report = analyze_workload(Workload(model.generate, (torch.ones(1, 4),), {"steps": 3}), "gen", options)
    assert report.overhead is None
    note = next(n for n in report.measurement_notes if n.startswith("overhead per module not attributed"))
    assert "RuntimeError" in note and "KV cache" in note
    assert report.total_energy_j > 0 and report.nodes


class CountedNet(Net):
    """Net that counts its own forward calls (the root of a workload)."""

    def __init__(self) -> None:
        super().__init__()
        self.forward_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        return super().forward(x)

    def twice(self, x: torch.Tensor) -> torch.Tensor:
        return self(self(x))  # a callable around the model: two root calls plus glue


def _pass(workload: Workload) -> tuple[Any, Any, Any, Any]:
    from magneton.measure.backends.estimate import EstimateBackend
    from magneton.measure.energy_pass import run_energy_pass
    from magneton.measure.options import PassOptions

    graph = capture(workload)
    backend = EstimateBackend()
    options = PassOptions(trials=2, min_window_s=0.002, forward_window_s=0.004, idle_s=0.001)
    return graph, backend, options, run_energy_pass(graph, workload, backend, options)


def test_the_root_module_is_the_whole_pass_and_is_not_replayed() -> None:
    # A replay of the root measured the whole pass a second time, at another moment and in a few short
    # windows; on HF GPT-2 the two readings of one computation disagreed (explained coverage 1.49).
    model = CountedNet().eval()
    workload = Workload(model, (torch.ones(2, 4),))
    graph, backend, options, result = _pass(workload)
    model.forward_calls = 0
    rows, _ = measure_overhead(graph, workload, backend, options, result)
    assert model.forward_calls == 1  # the recording run only: no warm-up, no window replays the root
    assert rows is not None
    by_path = {row.path: row for row in rows}
    assert by_path[""].whole_energy_j == result.forward_energy_j.median
    assert by_path["a"].whole_energy_j > 0  # children are still replayed
    explained = sum(row.overhead_energy_j for row in rows) + result.node_sum_j
    assert explained == pytest.approx(result.forward_energy_j.median)


def test_a_root_called_by_a_wrapper_callable_is_still_replayed() -> None:
    model = CountedNet().eval()
    workload = Workload(model.twice, (torch.ones(2, 4),))
    graph, backend, options, result = _pass(workload)
    model.forward_calls = 0
    rows, _ = measure_overhead(graph, workload, backend, options, result)
    assert model.forward_calls > 2  # recorded twice, then replayed: the whole pass is two calls plus glue
    assert rows is not None and "(outside the model)" in {row.path for row in rows}
