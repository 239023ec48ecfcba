"""Captures keep their context: make_fx module paths, compiled submodules, frozen numpy glue, NaN inputs, scope."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from magneton.capture import capture
from magneton.capture.annotate import strip_compile_wrapper
from magneton.pipeline import AnalyzeOptions, analyze_workload, energy_scope, run_once
from magneton.workload import Workload

FAST = AnalyzeOptions.from_flat(backend="estimate", trials=1, min_window_s=0.002, idle_s=0.01, forward_window_s=0.01)


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum().item() > 0:  # data-dependent: torch.export refuses, make_fx follows this input's path
            x = x * 2
        scale = torch.from_numpy(np.ones(4, dtype=np.float32) * 3)  # numpy glue  # glue
        return self.lin(x) * scale


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def test_make_fx_nodes_get_module_paths_and_frozen_glue_is_noted(marker_line) -> None:
    graph = capture(Workload(Outer().eval(), (torch.ones(2, 4),)))
    assert graph.method == "make_fx"
    paths = {node.op: node.module_path for node in graph.nodes}
    assert paths["aten.addmm.default"] == "block.lin"
    assert paths["aten.sum.default"] == "block"
    assert {node.module_type for node in graph.nodes if node.module_path == "block.lin"} == {"Linear"}
    glue = [note for note in graph.notes if "frozen into a constant" in note]
    assert len(glue) == 1
    assert f"{__file__}:{marker_line(__file__, 'glue')}" in glue[0]


def test_hooks_are_removed_after_capture() -> None:
    model = Outer().eval()
    capture(Workload(model, (torch.ones(2, 4),)))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_compiled_submodule_paths_lose_orig_mod() -> None:
    assert strip_compile_wrapper("block._orig_mod.lin") == "block.lin"
    assert strip_compile_wrapper("_orig_mod.h.0") == "h.0"
    assert strip_compile_wrapper("h.0.attn") == "h.0.attn"


def test_nan_in_inputs_and_outputs_is_warned() -> None:
    warnings = run_once(Workload(lambda x: x / 0, (torch.tensor([0.0, 1.0]),)), "t")
    assert len(warnings) == 1 and "outputs hold NaN or Inf" in warnings[0]
    warnings = run_once(Workload(lambda x: x + 1, (torch.tensor([float("nan")]),)), "t")
    assert [w.split(" hold")[0] for w in warnings] == ["1 of the workload's inputs", "1 of the workload's outputs"]
    assert run_once(Workload(lambda x: x + 1, (torch.ones(2),)), "t") == []


def test_energy_scope_names_what_one_call_is() -> None:
    assert energy_scope(nn.Linear(2, 2)) == "one forward pass of the workload"

    def generate(x: torch.Tensor) -> torch.Tensor:
        return x

    assert (
        energy_scope(generate)
        == "one call of the workload (test_energy_scope_names_what_one_call_is.<locals>.generate)"
    )
    report = analyze_workload(Workload(generate, (torch.ones(3),)), "g", FAST)
    assert report.energy_scope.startswith("one call of the workload")


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x))

    def generate(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        for _ in range(steps):
            x = self(x)
            if x.sum().item() > 1e9:  # a stopping test on values, as generate has: export refuses
                break
        return x


def test_generate_like_callables_get_module_paths_and_steps() -> None:
    model = Decoder().eval()
    workload = Workload(model.generate, (torch.ones(1, 4),), {"steps": 3})
    graph = capture(workload)
    assert graph.method == "make_fx"
    linears = [n for n in graph.nodes if n.op == "aten.addmm.default"]
    assert [(n.module_path, n.call) for n in linears] == [("lin", 1), ("lin", 2), ("lin", 3)]
    report = analyze_workload(workload, "gen", FAST)
    assert report.steps == 3
    assert sorted({n.step for n in report.nodes if n.step is not None}) == [1, 2, 3]
    assert report.energy_scope.startswith("one call of the workload (Decoder.generate)")


def test_hf_generate_every_operator_has_a_source_outside_torch_and_magneton() -> None:
    # Regression: make_fx kept only frames named ``forward``, so generate's own work (stopping criteria,
    # cache updates, token selection) stopped at Magneton's wrapper and had no source at all.
    transformers = pytest.importorskip("transformers")
    from magneton.capture.source import is_user_file

    config = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, n_positions=32, vocab_size=64, bos_token_id=0, eos_token_id=0, pad_token_id=0
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(config).eval()
        ids = torch.randint(1, config.vocab_size, (1, 6))
    kwargs = {"max_new_tokens": 3, "do_sample": False, "attention_mask": torch.ones_like(ids)}
    graph = capture(Workload(model.generate, (ids,), kwargs))
    assert graph.method == "make_fx"
    missing = [(node.op, node.call) for node in graph.nodes if node.source is None]
    assert missing == []
    assert all(is_user_file(node.source.file) and node.source.line > 0 for node in graph.nodes if node.source)
    glue = [node for node in graph.nodes if node.call is None]  # generate's work outside the model's forward
    assert glue and all("transformers" in node.source.file for node in glue if node.source)
    assert any(node.source.function == "_sample" for node in glue if node.source)
    # Operators inside helper functions point at the helper's line, not at the forward that called it.
    assert any(node.source.function != "forward" for node in graph.nodes if node.call is not None and node.source)
    assert sorted({node.call for node in graph.nodes if node.call is not None}) == [1, 2, 3]
