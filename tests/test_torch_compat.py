"""Every entry of magneton.capture.torch_compat, exercised on the torch that is installed.

`just compat-oldest` runs this file against the oldest torch pyproject accepts, so it needs
nothing but torch and pytest: no transformers, no rich, no fixtures from conftest.
"""

from __future__ import annotations

import inspect
import threading

import pytest
import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from magneton.capture import torch_compat
from magneton.capture.torch_compat import (
    EXPORT_GUARDS_MODULE,
    full_export_stack_traces,
    is_op_overload,
    keystr,
    make_fx_data_dependent_ok,
    mutates_arguments,
    tree_flatten,
    tree_flatten_with_path,
    tree_map,
)


def test_pytree_round_trip_and_paths() -> None:
    value = ((torch.ones(1), 2), {"mask": torch.zeros(2), "n": None})
    leaves, spec = tree_flatten(value)
    assert [type(leaf).__name__ for leaf in leaves] == ["Tensor", "int", "Tensor", "NoneType"]
    rebuilt = spec.unflatten(leaves)
    assert rebuilt[0][1] == 2 and torch.equal(rebuilt[1]["mask"], torch.zeros(2))

    doubled = tree_map(lambda v: v * 2 if isinstance(v, torch.Tensor) else v, value)
    assert torch.equal(doubled[0][0], torch.full((1,), 2.0)) and doubled[0][1] == 2

    paths = [keystr(path) for path, leaf in tree_flatten_with_path(value)[0] if isinstance(leaf, torch.Tensor)]
    assert paths == ["[0][0]", "[1]['mask']"]


def test_op_overloads_are_recognised() -> None:
    assert is_op_overload(torch.ops.aten.add.Tensor)
    assert not is_op_overload(torch.add)  # the Python binding, not a dispatcher overload
    assert not is_op_overload(torch.ops.aten.add)  # the packet of all overloads
    assert not is_op_overload(len)


def test_mutating_ops_are_recognised() -> None:
    assert mutates_arguments(torch.ops.aten.add_.Tensor)
    assert mutates_arguments(torch.ops.aten.index_put_.default)
    assert not mutates_arguments(torch.ops.aten.add.Tensor)
    assert not mutates_arguments(torch.ops.aten.transpose.int)  # a view aliases but does not write
    assert not mutates_arguments(torch.add)


def test_make_fx_keyword_lets_data_dependent_ops_trace() -> None:
    def branchy(x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum().item() > 0 else x - 1

    assert set(make_fx_data_dependent_ok()) <= set(inspect.signature(make_fx).parameters)
    with pytest.raises(RuntimeError):  # without the keyword make_fx refuses .item(): the entry is needed
        make_fx(branchy, tracing_mode="real")(torch.ones(2))
    traced = make_fx(branchy, tracing_mode="real", **make_fx_data_dependent_ok())(torch.ones(2))
    assert torch.equal(traced(torch.ones(2)), torch.full((2,), 2.0))


class _Helper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * 2  # MARK-helper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x)


def _export(module: nn.Module) -> torch.fx.GraphModule:
    return torch.export.export(module, (torch.randn(2, 3),), strict=False).module()


def _filter_is_patchable() -> bool:
    tracer_base = torch.fx.proxy.TracerBase
    return hasattr(tracer_base, "_filter_traceback_frames") and hasattr(
        tracer_base, "_record_forward_stack_traces_only"
    )


def test_export_keeps_helper_frames_where_torch_allows_it() -> None:
    original = getattr(torch.fx.proxy.TracerBase, "_filter_traceback_frames", None)
    with full_export_stack_traces():
        module = _export(_Helper())
    assert getattr(torch.fx.proxy.TracerBase, "_filter_traceback_frames", None) is original  # restored
    linear = next(node for node in module.graph.nodes if node.target is torch.ops.aten.linear.default)
    trace = linear.meta.get("stack_trace") or ""
    if _filter_is_patchable():
        assert "MARK-helper" in trace and "in project" in trace
    else:  # older torch (2.4): export's own traces, which keep only frames named forward
        assert "in forward" in trace and "in project" not in trace


def test_stack_trace_patch_is_restored_under_concurrent_exports() -> None:
    original = getattr(torch.fx.proxy.TracerBase, "_filter_traceback_frames", None)
    errors: list[BaseException] = []

    def export_once() -> None:
        try:
            with full_export_stack_traces():
                _export(_Helper())
        except BaseException as err:  # surfaced in the main thread
            errors.append(err)

    threads = [threading.Thread(target=export_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert getattr(torch.fx.proxy.TracerBase, "_filter_traceback_frames", None) is original


def test_only_call_module_export_inserts_is_the_guard_check() -> None:
    """If export's guard submodule is renamed, it would be profiled as an operator: this catches that."""
    module = _export(_Helper())
    call_modules = {str(node.target) for node in module.graph.nodes if node.op == "call_module"}
    assert call_modules <= {EXPORT_GUARDS_MODULE}


def test_nothing_else_in_the_package_touches_private_torch() -> None:
    """The compat module is the one place: other modules go through it."""
    import pathlib
    import re

    package = pathlib.Path(torch_compat.__file__).resolve().parent.parent
    private = re.compile(r"torch\._[a-z]|_pytree|\._schema|_filter_traceback_frames|_error_on_data_dependent_ops")
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        if path.name != "torch_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []


def test_backward_nodes_get_the_seq_nr_of_their_forward_op() -> None:
    """make_fx over forward + autograd.grad: the backward of relu carries relu's seq_nr and the backward phase."""
    weight = torch.randn(3, 3, requires_grad=True)
    x = torch.randn(2, 3)

    def step(weight: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch_compat.annotate_phase("forward"), torch.enable_grad():
            loss = torch.relu(x @ weight).sum()
        assert torch_compat.tag_backward_with_forward_seq_nr(loss)
        with torch_compat.annotate_phase("backward"):
            return torch.autograd.grad(loss, [weight])

    with torch_compat.preserve_node_meta():
        graph = make_fx(step, tracing_mode="real")(weight, x).graph
    nodes = {str(n.target): n for n in graph.nodes if n.op == "call_function"}
    relu, relu_grad = nodes["aten.relu.default"], nodes["aten.threshold_backward.default"]
    assert relu.meta["seq_nr"] == relu_grad.meta["seq_nr"]
    phase = relu_grad.meta.get("custom", {}).get("magneton_phase")
    assert phase == "backward" or relu_grad.meta.get("autograd_backward")
    assert not torch_compat.is_gradient_accumulation(relu_grad.meta)


def test_annotate_nodes_nests() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        with torch_compat.annotate_nodes({"a": "1"}):
            y = x + 1
            with torch_compat.annotate_nodes({"b": "2"}):
                return y * 2

    with torch_compat.preserve_node_meta():
        graph = make_fx(f, tracing_mode="real")(torch.randn(2)).graph
    custom = [n.meta.get("custom") for n in graph.nodes if n.op == "call_function"]
    assert custom == [{"a": "1"}, {"a": "1", "b": "2"}]


def test_grad_scaler_clone_state_tensors_and_iteration() -> None:
    """The scaler copy holds the user's scale and growth count as tensors; the user's scaler is only read."""
    model = torch.nn.Linear(3, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    user = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=3)
    user.scale(model(torch.randn(2, 3)).sum()).backward()
    assert not torch_compat.grad_scaler_mid_iteration(user)  # scale() alone does not start the per-optimizer state
    user.step(opt)
    assert torch_compat.grad_scaler_mid_iteration(user)
    user.update()
    assert not torch_compat.grad_scaler_mid_iteration(user)
    before = user.state_dict()
    assert before["_growth_tracker"] == 1

    clone, scale, tracker = torch_compat.clone_grad_scaler(user, torch.device("cpu"))
    assert type(clone) is type(user) and user.state_dict() == before
    assert scale.dtype == torch.float32 and float(scale) == 256.0
    assert tracker.dtype == torch.int32 and int(tracker) == 1
    assert torch_compat.grad_scaler_device_type(user) == "cpu"

    # The copy's step writes into exactly these tensors, never into the user's.
    clone.scale(model(torch.randn(2, 3)).sum()).backward()
    clone.unscale_(opt)
    assert torch_compat.grad_scaler_mid_iteration(clone)
    torch_compat.reset_grad_scaler_iteration(clone)
    assert not torch_compat.grad_scaler_mid_iteration(clone)
    clone.step(opt)
    clone.update()
    assert int(tracker) == 2 and user.state_dict() == before
