"""Capture fidelity: the analysed graph must do the work the eager program does for the same inputs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from torch import nn

from magneton.capture import capture, strategies
from magneton.capture.fidelity import DispatchProfile, Divergence, compare, record_call
from magneton.workload import Workload, load_target

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


class TracingBranch(nn.Module):
    """Does extra work only while a tracer runs it, as library code that checks ``is_compiling()`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        if torch.compiler.is_compiling():
            mask = torch.ones(h.shape[-1], h.shape[-1]).tril()  # a materialised mask eager never builds
            return h @ mask
        return h.cumsum(-1)


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.drop(self.proj(x)))


def _ops(graph: object) -> list[str]:
    return [node.op for node in graph.nodes]  # type: ignore[attr-defined]


def test_tracing_only_work_falls_back_to_make_fx_with_a_note() -> None:
    torch.manual_seed(0)
    graph = capture(Workload(TracingBranch(), (torch.randn(4, 16),)))
    assert graph.method == strategies.PRE_DISPATCH_MAKE_FX
    ops = _ops(graph)
    assert "aten.cumsum.default" in ops  # eager's path
    assert not {"aten.tril.default", "aten.ones.default", "aten.matmul.default"} & set(ops)  # export's path
    assert "aten.linear.default" in ops  # pre-dispatch keeps export's operators, not addmm + t
    note = next(n for n in graph.notes if n.startswith("torch.export's graph"))
    assert "eager does not (" in note and "tril x1" in note
    assert "lacks 1 that eager runs (cumsum x1)" in note
    assert "captured with make_fx (pre-dispatch) instead" in note


def test_make_fx_does_not_take_the_tracing_path() -> None:
    """The crux: make_fx on real tensors runs the Python code as eager does (``is_compiling()`` is False)."""
    seen: list[bool] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.compiler.is_compiling())
            return x + 1

    strategies._capture_make_fx(Workload(Probe(), (torch.ones(2),)), pre_dispatch=True)
    strategies._capture_make_fx(Workload(Probe(), (torch.ones(2),)))
    assert seen == [False, False]


def test_plain_module_keeps_export_even_with_dropout_in_train_mode() -> None:
    torch.manual_seed(0)
    module = Plain().train()  # dropout draws different values in each run: counts, not values, are compared
    graph = capture(Workload(module, (torch.randn(8, 16),)))
    assert graph.method == "torch.export"
    assert not any("eager" in note for note in graph.notes), graph.notes


def test_program_writing_into_its_input_keeps_export_and_its_input() -> None:
    def bump(x: torch.Tensor) -> torch.Tensor:
        x.add_(1)
        return x * 2

    x = torch.zeros(3)
    graph = capture(Workload(bump, (x,)))
    assert graph.method == "torch.export"
    assert graph.mutates_inputs
    assert torch.equal(x, torch.zeros(3))  # every run (eager check, graph run, annotation) was undone


def test_no_matching_method_keeps_the_first_graph_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def always_diverges(eager: DispatchProfile, graph: DispatchProfile) -> Divergence:
        return Divergence({"clone": 2}, {}, extra_bytes=10**6, missing_bytes=0, eager_bytes=10**6)

    monkeypatch.setattr(strategies, "compare", always_diverges)
    graph = capture(Workload(Plain().eval(), (torch.randn(2, 16),)))
    assert graph.method == "torch.export"
    assert any("no other capture method follows eager either" in note for note in graph.notes), graph.notes


def test_compare_ignores_views_and_in_place_forms() -> None:
    x = torch.randn(4, 4)

    def eager() -> None:
        y = x.clone()
        y.add_(1)
        y.t().reshape(16)  # a view of a non-contiguous tensor copies: counted

    def graph() -> None:
        y = x.clone()
        y = y + 1
        y.t().contiguous().view(16)

    found = compare(record_call(eager), record_call(graph))
    assert not found.is_material(), found.describe()
    extra = compare(
        record_call(lambda: (x.clone() + 1).sum()), record_call(lambda: (x.clone() + 1).expand(2, 4, 4).clone().sum())
    )
    assert extra.is_material()
    assert extra.extra == {"clone": 1}  # the expand is a view; the copy of it is the work eager never does


def test_piecewise_pieces_are_checked_and_captured() -> None:
    """A program no method captures whole is captured piecewise, each piece through the same check."""

    class Untraceable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = TracingBranch()
            self.second = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            buffer = io.BytesIO()  # torch.save/torch.load break export, make_fx and symbolic_trace alike
            torch.save(self.first(x), buffer)
            buffer.seek(0)
            return self.second(torch.load(buffer))

    torch.manual_seed(0)
    graph = capture(Workload(Untraceable().eval(), (torch.randn(4, 16),)))
    assert graph.method == "piecewise"
    assert "piece first: captured with make_fx (pre-dispatch)" in graph.notes
    assert any(n.startswith("piece first: torch.export's graph runs") for n in graph.notes), graph.notes
    assert "piece second: captured with torch.export" in graph.notes
    assert "aten.cumsum.default" in _ops(graph)
    assert "aten.tril.default" not in _ops(graph)


def test_llama_sdpa_gqa_is_captured_as_eager_runs_it() -> None:
    pytest.importorskip("transformers")
    fast = capture(load_target(f"{CORPUS / 'extra-llama-eager-gqa' / 'fast.py'}:workload"))
    ops = _ops(fast)
    assert fast.method == strategies.PRE_DISPATCH_MAKE_FX, fast.notes
    assert "aten.clone.default" not in ops  # repeat_kv's copy of K/V: only the tracing path makes it
    assert "aten.where.self" not in ops  # nor the causal mask
    assert ops.count("aten.scaled_dot_product_attention.default") == 2
    assert any("torch.export's graph runs" in note and "clone x4" in note for note in fast.notes), fast.notes
    slow = capture(load_target(f"{CORPUS / 'extra-llama-eager-gqa' / 'slow.py'}:workload"))
    assert slow.method == "torch.export"  # eager attention builds its mask in eager too: nothing to fix
