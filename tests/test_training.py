"""Training steps: phases, backward operators tied to forward lines, state left untouched, clear errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import magneton
from magneton.capture import InputSnapshot
from magneton.capture.training import training_workload
from magneton.errors import WorkloadError
from magneton.examples import tiny_gpt
from magneton.graph import OpGraph, OpNode
from magneton.workload import TrainStep, load_any_target, validate_train_step
from tests.conftest import line_of

HERE = Path(__file__)
FAST = {"backend": "estimate", "trials": 2, "min_window_s": 0.002, "idle_s": 0.01, "rules": False}


class SmallMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))  # mlp-hidden
        return self.b(h)  # mlp-out


def mlp_step(optimizer: str | None = "sgd") -> TrainStep:
    torch.manual_seed(0)
    model = SmallMLP()
    x, target = torch.randn(5, 8), torch.randn(5, 4)
    opt = None
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)

    def loss_fn(out: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, target)  # mlp-loss

    return TrainStep(model, (x,), loss_fn, optimizer=opt)


def nodes_of(graph: OpGraph, phase: str, op: str) -> list[OpNode]:
    return [n for n in graph.nodes if n.phase == phase and n.op == op]


def test_mlp_phases_and_forward_lines() -> None:
    graph, _, _ = training_workload("mlp", validate_train_step("mlp", mlp_step()))
    phases = [n.phase for n in graph.nodes]
    assert set(phases) == {"forward", "backward", "optimizer"}
    # Step order: every forward node before every backward node before every optimizer node.
    assert phases == sorted(phases, key=["forward", "backward", "optimizer"].index)
    hidden, out, loss = (line_of(HERE, m) for m in ("mlp-hidden", "mlp-out", "mlp-loss"))

    (relu,) = nodes_of(graph, "forward", "aten.relu.default")
    (relu_grad,) = nodes_of(graph, "backward", "aten.threshold_backward.default")
    assert relu_grad.forward_node == relu.id
    assert relu_grad.source is not None and relu_grad.source.line == hidden and relu_grad.source.file == str(HERE)
    assert relu_grad.module_path == ""  # torch.relu is called in the root module's forward

    mse_grad = nodes_of(graph, "backward", "aten.mse_loss_backward.default")
    assert [n.source.line for n in mse_grad if n.source] == [loss]
    # Linear b's weight gradient: an mm in the backward, tied to the line calling self.b, in module "b".
    grads_b = [n for n in graph.nodes if n.phase == "backward" and n.op == "aten.mm.default" and n.module_path == "b"]
    assert grads_b and {n.source.line for n in grads_b if n.source} == {out}
    grads_a = [n for n in graph.nodes if n.phase == "backward" and n.op == "aten.mm.default" and n.module_path == "a"]
    assert grads_a and {n.source.line for n in grads_a if n.source} == {hidden}
    # SGD with momentum: the update is in-place on the (cloned) parameters, outside any user line.
    updates = [n for n in graph.nodes if n.phase == "optimizer" and n.mutates]
    assert updates and all(n.source is None for n in updates)


def test_tiny_gpt_backward_lines_and_modules() -> None:
    graph, _, _ = training_workload("tiny", load_any_target("magneton.examples.tiny_gpt:train_workload"))
    path = tiny_gpt.__file__

    def lines(op: str) -> set[tuple[int, str]]:
        found = nodes_of(graph, "backward", op)
        assert found, op
        assert all(n.source is not None and n.source.file == path for n in found)
        return {(n.source.line, n.module_path) for n in found if n.source}

    sdpa = "aten._scaled_dot_product_flash_attention_for_cpu_backward.default"
    assert lines(sdpa) == {(34, "h.0.attn"), (34, "h.1.attn")}
    assert lines("aten.gelu_backward.default") == {(47, "h.0.mlp"), (47, "h.1.mlp")}
    assert lines("aten.embedding_dense_backward.default") == {(75, "wte"), (75, "wpe")}
    assert lines("aten.native_layer_norm_backward.default") == {
        (59, "h.0.ln_1"),
        (59, "h.1.ln_1"),
        (60, "h.0.ln_2"),
        (60, "h.1.ln_2"),
        (78, "ln_f"),
    }
    assert lines("aten.nll_loss_backward.default") == {(120, "")}  # the loss function in train_workload
    # Each backward node points at a forward node of the same line.
    by_id = {n.id: n for n in graph.nodes}
    for node in graph.nodes:
        if node.forward_node is not None:
            assert by_id[node.forward_node].phase == "forward"
            assert by_id[node.forward_node].source == node.source
    assert nodes_of(graph, "optimizer", "aten.addcdiv_.default")  # AdamW for-loop update, one per parameter


def _state(step: TrainStep) -> tuple[list[torch.Tensor], dict]:
    return [p.detach().clone() for p in step.model.parameters()], copy.deepcopy(step.optimizer.state_dict())


def _assert_same(step: TrainStep, before: tuple[list[torch.Tensor], dict]) -> None:
    params, opt_state = before
    for now, then in zip(step.model.parameters(), params, strict=True):
        assert torch.equal(now, then) and now.grad is None
    after = step.optimizer.state_dict()
    assert after["param_groups"] == opt_state["param_groups"]
    assert after["state"].keys() == opt_state["state"].keys()
    for key, values in opt_state["state"].items():
        for name, value in values.items():
            got = after["state"][key][name]
            assert torch.equal(got, value) if isinstance(value, torch.Tensor) else got == value


def test_analysis_leaves_model_and_optimizer_exactly_as_they_were() -> None:
    step = mlp_step("adamw")
    # One real step first, so the optimizer has state (exp_avg, step count) that analysis could disturb.
    F.mse_loss(step.model(*step.args), torch.zeros(5, 4)).backward()
    step.optimizer.step()
    step.optimizer.zero_grad(set_to_none=True)
    before = _state(step)
    report = magneton.analyze(step, **FAST)
    _assert_same(step, before)
    assert {p.phase for p in report.phases or []} == {"forward", "backward", "optimizer"}
    assert report.energy_scope.startswith("one training step")


def test_every_trial_starts_from_the_same_state() -> None:
    graph, workload, run = training_workload("mlp", validate_train_step("mlp", mlp_step("adamw")))
    assert graph.mutates_inputs  # the optimizer updates its (cloned) parameters and state in place
    snapshot = InputSnapshot(list(run.flat_inputs))
    first = workload.fn(*workload.args)
    assert snapshot.changed()  # the step really moved the parameters
    snapshot.restore()
    second = workload.fn(*workload.args)
    # Restored state: the same loss and gradients, bit for bit, and the same parameters after the step.
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    from magneton.measure.backends import BackendOptions, create_backend
    from magneton.measure.energy_pass import run_energy_pass
    from magneton.measure.options import PassOptions

    snapshot.restore()
    backend = create_backend("estimate", BackendOptions()).backend
    run_energy_pass(graph, workload, backend, PassOptions(trials=2, min_window_s=0.002, idle_s=0.01))
    assert not snapshot.changed()  # the pass leaves the step's inputs as it found them


def test_train_flag_on_a_plain_target_sums_the_float_outputs() -> None:
    torch.manual_seed(0)
    model = SmallMLP()
    report = magneton.analyze(model, torch.randn(3, 8), train=True, **FAST)
    phases = {p.phase: p for p in report.phases or []}
    assert phases["forward"].count > 0 and phases["backward"].count > 0 and phases["optimizer"].count == 0
    assert any(n.op == "aten.sum.default" and n.phase == "forward" for n in report.nodes)
    data = report.to_dict()
    assert {node["phase"] for node in data["nodes"]} == {"forward", "backward"}
    hidden = line_of(HERE, "mlp-hidden")
    (row,) = [r for r in report.rollups.by_line if r.line == hidden]
    assert row.forward_energy_j is not None and row.backward_energy_j is not None
    assert row.forward_energy_j + row.backward_energy_j + (row.optimizer_energy_j or 0.0) == pytest.approx(row.energy_j)


def test_cli_train_flag(run_cli, write_target) -> None:
    target = write_target(
        """
        import torch
        from torch import nn

        def workload():
            torch.manual_seed(0)
            return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)), (torch.randn(3, 4),)
        """
    )
    result = run_cli(
        "analyze", target, "--train", "--backend", "estimate", "--trials", "1", "--min-window-s", "0.002", "--no-rules"
    )
    assert result.returncode == 0, result.stderr
    assert "By phase" in result.stdout and "training step" in result.stdout


# ------------------------------------------------------------------------------------------------ bad targets


def test_no_trainable_parameters() -> None:
    model = nn.Linear(3, 3).requires_grad_(False)
    with pytest.raises(WorkloadError, match="no trainable parameters.*all 2 of its parameters have requires_grad"):
        validate_train_step("t", TrainStep(model, (torch.randn(2, 3),), lambda out: out.sum()))


def test_loss_not_a_scalar() -> None:
    step = TrainStep(nn.Linear(3, 3), (torch.randn(2, 3),), lambda out: out * 2)
    with pytest.raises(WorkloadError, match=r"the loss is not a scalar: shape \[2, 3\]"):
        training_workload("t", validate_train_step("t", step))


def test_loss_detached() -> None:
    step = TrainStep(nn.Linear(3, 3), (torch.randn(2, 3),), lambda out: out.sum().detach())
    with pytest.raises(WorkloadError, match="does not depend on any trainable parameter"):
        training_workload("t", validate_train_step("t", step))


def test_optimizer_that_does_not_own_the_parameters() -> None:
    model, other = nn.Linear(3, 3), nn.Linear(3, 3)
    step = TrainStep(model, (torch.randn(2, 3),), lambda out: out.sum(), optimizer=torch.optim.SGD(other.parameters()))
    with pytest.raises(WorkloadError, match="optimizer holds 2 tensor.*not parameters of the model"):
        validate_train_step("t", step)


def test_loss_fn_and_compute_loss_are_exclusive() -> None:
    model = nn.Linear(3, 3)
    with pytest.raises(WorkloadError, match="exactly one of loss_fn"):
        validate_train_step("t", TrainStep(model, (torch.randn(2, 3),)))


def test_train_on_a_plain_function_is_refused() -> None:
    with pytest.raises(magneton.MagnetonError, match="TrainStep.model must be a torch.nn.Module"):
        magneton.analyze(lambda x: x * 2, torch.randn(2), train=True, **FAST)


def test_compute_loss_callable(write_target) -> None:
    target = write_target(
        """
        import torch
        from torch import nn
        import magneton

        def workload():
            torch.manual_seed(0)
            model = nn.Linear(4, 2)
            x = torch.randn(3, 4)
            def compute_loss(m, x):
                return m(x).pow(2).mean()  # loss-line
            return magneton.TrainStep(model, (x,), compute_loss=compute_loss)
        """
    )
    step = load_any_target(target)
    assert isinstance(step, TrainStep)
    graph, _, _ = training_workload(target, step)
    path = target.rpartition(":")[0]
    pow_grads = [
        n for n in graph.nodes if n.phase == "backward" and n.source and n.source.line == line_of(path, "loss-line")
    ]
    assert pow_grads


# ------------------------------------------------------------------------------------------------ diff

DIFF_TARGETS = """
import torch
from torch import nn
import magneton


def _step(foreach):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64))
    x, y = torch.randn(16, 64), torch.randn(16, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=foreach)
    return magneton.TrainStep(model, (x,), lambda out: torch.nn.functional.mse_loss(out, y), optimizer=opt)


def loop():
    return _step(False)


def foreach():
    return _step(True)
"""


@pytest.mark.slow  # two captures, two region replays: ~30 s on a busy 2-core machine
def test_diff_adamw_for_loop_against_foreach_finds_the_optimizer_region(write_target) -> None:
    from magneton.diff.engine import DiffOptions, diff_targets

    target = write_target(DIFF_TARGETS, function="loop")
    path = target.rpartition(":")[0]
    result = diff_targets(
        f"{path}:loop",
        f"{path}:foreach",
        DiffOptions(backend="estimate", trials=1, min_window_s=0.001, knobs=False, op_split=False),
    )
    # Loss and gradients were compared and agree (the optimizer's implementation does not change them).
    assert result.output_difference is None or result.output_difference.relative < 1e-5
    side_a, side_b = (s.side for s in result.sides)
    optimizer_regions = [
        r
        for r in result.regions
        if r.region.a_ops
        and all(side_a.flow.nodes[i].phase == "optimizer" for i in r.region.a_ops)
        and r.region.b_ops
        and all(side_b.flow.nodes[i].phase == "optimizer" for i in r.region.b_ops)
    ]
    assert optimizer_regions
    # The whole optimizer update is one region: the for-loop's per-parameter ops against foreach's batched ones.
    biggest = max(optimizer_regions, key=lambda r: len(r.region.a_ops))
    a_ops = {side_a.flow.nodes[i].op for i in biggest.region.a_ops}
    b_ops = {side_b.flow.nodes[i].op for i in biggest.region.b_ops}
    assert "aten.addcdiv_.default" in a_ops and any(op.startswith("aten._foreach_") for op in b_ops)
