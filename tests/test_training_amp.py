"""Mixed-precision training steps (GradScaler) and the training rules MAG221 and MAG222."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import magneton
from magneton.capture import InputSnapshot
from magneton.capture.training import training_workload
from magneton.errors import WorkloadError
from magneton.graph import OpGraph
from magneton.rules import load_rules
from magneton.rules.graphview import GraphView
from magneton.workload import TrainStep, load_any_target, validate_train_step
from tests.conftest import line_of
from tests.test_training import FAST, SmallMLP, _assert_same, _state

HERE = Path(__file__)
UNSCALE = "aten._amp_foreach_non_finite_check_and_unscale_.default"
UPDATE_SCALE = "aten._amp_update_scale_.default"
OPTIMIZERS = {
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},  # takes the scale and the inf flag into its kernel (_step_supports_amp_scaling)
}


def scaled_step(kind: str = "for-loop", init_scale: float = 1024.0, loss_gain: float = 1.0) -> TrainStep:
    torch.manual_seed(0)
    model = SmallMLP()
    x, target = torch.randn(5, 8), torch.randn(5, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, **OPTIMIZERS[kind])
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)

    def loss_fn(out: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.float(), target) * loss_gain

    return TrainStep(model, (x,), loss_fn, optimizer=optimizer, autocast_dtype=torch.float16, scaler=scaler)


def users_own_step(step: TrainStep) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], dict]:
    """The step as a user writes it, on deep copies: loss, unscaled gradients, parameters after, scaler state after."""
    # One deepcopy: the copied optimizer holds the copied model's parameters.
    model, optimizer, scaler = copy.deepcopy((step.model, step.optimizer, step.scaler))
    with torch.autocast("cpu", dtype=step.autocast_dtype):
        loss = step.loss_fn(model(*step.args))
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    return loss.detach(), grads, [p.detach().clone() for p in model.parameters()], scaler.state_dict()


def ops(graph: OpGraph, phase: str) -> list[str]:
    return [n.op for n in graph.nodes if n.phase == phase]


# ------------------------------------------------------------------------------------------------ GradScaler


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_scaled_step_is_captured_and_equals_the_users_own_step(kind: str) -> None:
    step = validate_train_step("amp", scaled_step(kind))
    loss, grads, params_after, scaler_after = users_own_step(step)
    graph, workload, run = training_workload("amp", step)

    # Magneton's eager step (what the whole-step window measures) is the user's scaled step, bit for bit.
    out = workload.fn(*workload.args)
    assert torch.equal(out[0], loss)
    assert all(torch.equal(a, b) for a, b in zip(out[1:], grads, strict=True))  # unscaled, as the user sees them
    assert all(torch.equal(a, b) for a, b in zip(run.flat_inputs[:4], params_after, strict=True))
    assert run.scaler is not None and run.scaler.state_dict() == scaler_after

    # The captured graph replays the same step: parameters and the scaler's tensors updated the same way.
    run.restore()
    with torch.no_grad():  # the graph holds the backward explicitly, as the energy pass replays it
        replayed = graph.pieces[0].module(*run.flat_inputs)
    assert all(torch.equal(a, b) for a, b in zip(replayed[1:], grads, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(run.flat_inputs[:4], params_after, strict=True))
    assert run.scaler_tensors is not None
    assert float(run.scaler_tensors[0]) == scaler_after["scale"]
    assert int(run.scaler_tensors[1]) == scaler_after["_growth_tracker"] == 1
    run.restore()

    # Phases: the loss scaling seeds the backward; unscale, inf check, update and scale update are the optimizer's.
    first_backward = next(n for n in graph.nodes if n.phase == "backward")
    assert first_backward.op == "aten.mul.Tensor"  # loss * scale
    assert UNSCALE in ops(graph, "optimizer") or kind == "fused"  # fused AdamW checks inside its own kernel
    assert UPDATE_SCALE in ops(graph, "optimizer")
    assert not {UNSCALE, UPDATE_SCALE} & set(ops(graph, "forward") + ops(graph, "backward"))
    assert any(n.mutates and n.phase == "optimizer" for n in graph.nodes if n.op != UPDATE_SCALE)
    assert graph.training is not None and graph.training.scaler
    assert any(note.startswith("GradScaler step traced at scale 1024") for note in graph.notes)


def test_every_trial_restores_the_scaler_state() -> None:
    graph, workload, run = training_workload("amp", validate_train_step("amp", scaled_step()))
    snapshot = InputSnapshot(list(run.flat_inputs))
    assert run.scaler_tensors is not None
    scale, tracker = run.scaler_tensors
    first = workload.fn(*workload.args)
    assert int(tracker) == 1  # update() counted a good step
    run.restore()
    assert int(tracker) == 0 and float(scale) == 1024.0 and not snapshot.changed()
    second = workload.fn(*workload.args)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    from magneton.measure.backends import BackendOptions, create_backend
    from magneton.measure.energy_pass import run_energy_pass
    from magneton.measure.options import PassOptions

    run.restore()
    backend = create_backend("estimate", BackendOptions()).backend
    run_energy_pass(graph, workload, backend, PassOptions(trials=2, min_window_s=0.002, idle_s=0.01))
    assert not snapshot.changed()  # scale, growth tracker, parameters, optimizer state: as they were


def test_analysis_leaves_the_users_scaler_model_and_optimizer_as_they_were() -> None:
    step = scaled_step()
    # One real scaled step first: the scaler then holds its tensors and a growth count analysis could disturb.
    with torch.autocast("cpu", dtype=torch.float16):
        loss = step.loss_fn(step.model(*step.args))
    step.scaler.scale(loss).backward()
    step.scaler.step(step.optimizer)
    step.scaler.update()
    step.optimizer.zero_grad(set_to_none=True)
    before, scaler_before = _state(step), step.scaler.state_dict()
    assert scaler_before["_growth_tracker"] == 1
    report = magneton.analyze(step, **FAST)
    _assert_same(step, before)
    assert step.scaler.state_dict() == scaler_before
    assert {p.phase for p in report.phases or []} == {"forward", "backward", "optimizer"}
    # The user's scaler is between iterations still: another real iteration runs without complaint.
    with torch.autocast("cpu", dtype=torch.float16):
        loss = step.loss_fn(step.model(*step.args))
    step.scaler.scale(loss).backward()
    step.scaler.step(step.optimizer)
    step.scaler.update()
    assert step.scaler.state_dict()["_growth_tracker"] == 2


def test_an_overflowing_step_is_skipped_and_said_so() -> None:
    # At this scale the scaled loss overflows float32: scaler.step skips the update and update() backs off.
    step = validate_train_step("amp", scaled_step(init_scale=2.0**127, loss_gain=1e4))
    _, _, params_after, scaler_after = users_own_step(step)
    assert scaler_after["scale"] == 2.0**126
    graph, _, run = training_workload("amp", step)
    assert all(torch.equal(a, p) for a, p in zip(run.flat_inputs[:4], step.model.parameters(), strict=True))
    assert all(torch.equal(a, p) for a, p in zip(params_after, step.model.parameters(), strict=True))
    assert UNSCALE in ops(graph, "optimizer") and UPDATE_SCALE in ops(graph, "optimizer")
    assert "aten.addcdiv_.default" not in ops(graph, "optimizer")  # no AdamW update in the graph
    (note,) = [n for n in graph.notes if n.startswith("GradScaler")]
    assert "the step updates no parameter" in note and "backed off to 8.50706e+37" in note


def test_scaler_errors() -> None:
    model = nn.Linear(3, 3)
    x = (torch.randn(2, 3),)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def check(match: str, **fields: object) -> None:
        step = TrainStep(model, x, lambda out: out.sum(), **{"optimizer": opt, **fields})  # type: ignore[arg-type]
        with pytest.raises(WorkloadError, match=match):
            validate_train_step("t", step)

    check("scaler needs TrainStep.optimizer", optimizer=None, scaler=torch.amp.GradScaler("cpu"))
    check(r"scaler is disabled \(enabled=False\).*pass scaler=None", scaler=torch.amp.GradScaler("cpu", enabled=False))
    check("must be a torch.amp.GradScaler, got builtins.object", scaler=object())
    check(r"built for 'xpu' but the parameters are on 'cpu'.*GradScaler\('cpu'\)", scaler=torch.amp.GradScaler("xpu"))
    half = nn.Linear(3, 3).half()
    with pytest.raises(WorkloadError, match="float16.*cannot unscale float16 gradients.*autocast_dtype"):
        validate_train_step(
            "t",
            TrainStep(
                half,
                (torch.randn(2, 3).half(),),
                lambda out: out.float().sum(),
                optimizer=torch.optim.SGD(half.parameters()),
                scaler=torch.amp.GradScaler("cpu"),
            ),
        )
    busy = torch.amp.GradScaler("cpu")
    busy.scale(model(*x).sum()).backward()
    busy.unscale_(opt)
    check(r"middle of an iteration.*after scaler.update\(\)", scaler=busy)
    opt.zero_grad()


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch.cuda.amp.GradScaler disables itself only without CUDA")
def test_cuda_scaler_on_a_cpu_machine_says_what_to_use() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own "CUDA is not available. Disabling." and deprecation warnings
        scaler = torch.cuda.amp.GradScaler()
    model = nn.Linear(3, 3)
    step = TrainStep(
        model, (torch.randn(2, 3),), lambda out: out.sum(), optimizer=torch.optim.SGD(model.parameters()), scaler=scaler
    )
    with pytest.raises(WorkloadError, match=r"disabled.*on the CPU use torch.amp.GradScaler\('cpu'\)"):
        validate_train_step("t", step)


# ------------------------------------------------------------------------------------------------ MAG221


def _rule(rule_id: str):
    return next(r for r in load_rules().rules if r.id == rule_id)


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(x)  # backbone-line
        return self.head(features)  # head-line


def head_only_step(frozen_by_flag: bool, scaler: bool = False) -> TrainStep:
    torch.manual_seed(0)
    model = Backbone()
    if frozen_by_flag:
        model.body.requires_grad_(False)
    opt = torch.optim.SGD(model.head.parameters(), lr=0.1)
    return TrainStep(
        model,
        (torch.randn(6, 8),),
        lambda out: out.pow(2).mean(),
        optimizer=opt,
        scaler=torch.amp.GradScaler("cpu") if scaler else None,
    )


@pytest.mark.parametrize("scaler", [False, True])
def test_frozen_backbone_gradients_are_found_and_the_fix_removes_them(scaler: bool) -> None:
    rule = _rule("MAG221")
    graph, _, _ = training_workload("frozen", validate_train_step("frozen", head_only_step(False, scaler)))
    (hit,) = rule().check_graph(GraphView(graph))
    assert set(hit.details["frozen_parameters"]) == {"body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"}
    by_id = {n.id: n for n in graph.nodes}
    wasted = [by_id[i] for i in hit.nodes]
    assert all(n.phase == "backward" for n in wasted)
    # The first node shown computes (not a view) and points at the backbone's line.
    assert wasted[0].source is not None and wasted[0].source.line == line_of(HERE, "backbone-line")
    # The head's own gradients are not matched: its weight-gradient mm and bias sum are computed either way.
    head_grads = {p.gradient_node for p in graph.training.parameters if p.name.startswith("head")}  # type: ignore[union-attr]
    assert head_grads and not head_grads & set(hit.nodes)

    fixed, _, _ = training_workload("fixed", validate_train_step("fixed", head_only_step(True, scaler)))
    assert not list(rule().check_graph(GraphView(fixed)))

    def computing_backward(g: OpGraph) -> int:
        return sum(1 for n in g.nodes if n.phase == "backward" and not n.zero_cost)

    # requires_grad_(False) removes exactly the matched computing operators from the backward pass.
    matched = sum(1 for n in wasted if not n.zero_cost)
    assert computing_backward(graph) - computing_backward(fixed) == matched


def test_frozen_gradients_finding_in_analyze_carries_the_backward_energy() -> None:
    report = magneton.analyze(head_only_step(False), **{**FAST, "rules": True})
    (finding,) = [f for f in report.findings if f.rule == "MAG221"]
    energies = {n.id: n.energy_j for n in report.nodes}
    assert finding.energy_j == pytest.approx(sum(energies[i] for i in finding.nodes)) and finding.energy_j > 0
    assert {n.phase for n in report.nodes if n.id in finding.nodes} == {"backward"}
    assert "requires_grad_(False)" in finding.suggestion
    assert "4 parameter(s) the optimizer never updates" in finding.title


# ------------------------------------------------------------------------------------------------ MAG222

HAND_MASTER = """
import torch
from torch import nn
import magneton


class HalfSGD(torch.optim.Optimizer):
    def __init__(self, params, lr=0.01):
        super().__init__(params, {{"lr": lr}})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                master = p.float()  # master-copy
                master.add_(p.grad.float(), alpha=-group["lr"])
                {write_back}  # write-back


def workload():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).to(torch.{dtype})
    x = torch.randn(4, 8, dtype=torch.{dtype})
    return magneton.TrainStep(model, (x,), lambda out: out.float().sum(), optimizer=HalfSGD(model.parameters()))
"""


@pytest.mark.parametrize(
    ("write_back", "dtype", "downcast"),
    [
        ("p.copy_(master)", "bfloat16", False),
        ("p.data.copy_(master)", "float16", False),  # through .data: a detach of the parameter
        ("p.copy_(master.to(p.dtype))", "bfloat16", True),
    ],
)
def test_float32_master_copy_by_hand_is_found_at_the_users_line(write_target, write_back, dtype, downcast) -> None:
    target = write_target(HAND_MASTER.format(write_back=write_back, dtype=dtype))
    graph, _, _ = training_workload(target, load_any_target(target))
    (hit,) = _rule("MAG222")().check_graph(GraphView(graph))
    assert hit.details["parameters"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert hit.details["dtype"] == dtype
    by_id = {n.id: n for n in graph.nodes}
    matched = [by_id[i] for i in hit.nodes]
    path = target.rpartition(":")[0]
    copies = [n for n in matched if n.op == "aten._to_copy.default" and n.outputs[0].dtype == "float32"]
    writes = [n for n in matched if n.op == "aten.copy_.default"]
    assert len(copies) == len(writes) == 4
    assert {n.source.line for n in copies if n.source} == {line_of(path, "master-copy")}
    assert {n.source.line for n in writes if n.source} == {line_of(path, "write-back")}
    downcasts = [n for n in matched if n.op == "aten._to_copy.default" and n.outputs[0].dtype == dtype]
    assert len(downcasts) == (4 if downcast else 0)
    assert all(n.phase == "optimizer" for n in matched)


def test_master_copy_rule_ignores_a_float32_copy_of_a_gradient_or_a_forward_upcast(write_target) -> None:
    # Float32 copies of the half gradients and of the weights in the forward, but no write-back into a parameter.
    target = write_target(
        """
        import torch
        from torch import nn
        import magneton


        class Upcast(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(8, 2).to(torch.bfloat16)

            def forward(self, x):
                return x.float() @ self.lin.weight.float().t()


        def workload():
            model = Upcast()
            opt = torch.optim.SGD(model.parameters(), lr=0.1, foreach=True)
            x = torch.randn(4, 8, dtype=torch.bfloat16)
            return magneton.TrainStep(model, (x,), lambda out: out.sum(), optimizer=opt)
        """
    )
    graph, _, _ = training_workload(target, load_any_target(target))
    assert any(n.op == "aten._to_copy.default" and n.outputs[0].dtype == "float32" for n in graph.nodes)
    assert not list(_rule("MAG222")().check_graph(GraphView(graph)))


# ------------------------------------------------------------------------------------------------ diff


def test_diff_compares_model_and_batch_not_optimizer_or_scaler_state(write_target) -> None:
    from magneton.diff.engine import _inputs_to_compare, load_diff_target
    from magneton.diff.outputs import DiffError, check_same_inputs

    target = write_target(
        """
        import torch
        from torch import nn
        import magneton


        def _step(scaler, seed=0):
            torch.manual_seed(0)
            model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
            torch.manual_seed(seed)
            x = torch.randn(8, 16)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            return magneton.TrainStep(model, (x,), lambda out: out.pow(2).mean(), optimizer=opt,
                                      scaler=torch.amp.GradScaler("cpu") if scaler else None)


        def plain():
            return _step(False)


        def scaled():
            return _step(True)


        def other_batch():
            return _step(True, seed=1)
        """
    )
    path = target.rpartition(":")[0]
    plain, scaled, other = (load_diff_target(f"{path}:{name}") for name in ("plain", "scaled", "other_batch"))
    assert len(scaled.args) == len(plain.args) + 2  # the scaler's scale and growth tracker are inputs of its step
    check_same_inputs(_inputs_to_compare(plain), _inputs_to_compare(scaled), "plain", "scaled")
    with pytest.raises(DiffError, match="take different example inputs"):
        check_same_inputs(_inputs_to_compare(plain), _inputs_to_compare(other), "plain", "other_batch")
