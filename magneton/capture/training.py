"""Capturing a whole training step (forward, loss, backward, optimizer step) as one ATen graph.

Route: ``make_fx`` in real-tensor mode over a function that runs the forward and the
loss with ``torch.func.functional_call``, then ``torch.autograd.grad`` on the loss,
then the optimizer's own ``step()`` on the gradients. Why this route:

- the backward is traced through the autograd engine itself, so every backward
  operator is an ATen node of the same graph as the forward, and aot_autograd's
  grad_fn hooks give each one the ``seq_nr`` of the forward operator it
  differentiates (that is how a backward node gets its forward source line);
- the optimizer runs its real code (for-loop, foreach or fused, whichever the
  user configured) on tensors make_fx tracks, so its in-place updates are graph
  nodes too — aot_autograd's joint graph and ``torch.export`` joint export stop at
  the gradients and would leave the optimizer out;
- real tensors (not fake) because an optimizer reads its step count with
  ``.item()`` and Python control flow follows the example batch, as make_fx
  already does for inference.

Nothing of the user's is modified: the step runs on clones of the parameters,
buffers and batch, and on a clone of the optimizer (same class, same param groups,
state loaded from a deep copy of its state dict). Those clones are the graph's
inputs; the energy pass restores them before every run, so every trial measures
the same step from the same state.

A ``GradScaler`` (mixed precision) is traced the same way, by running its own code:
``scale(loss)``, the backward of the scaled loss, then ``scaler.step(optimizer)``
(``unscale_``: one ``_amp_foreach_non_finite_check_and_unscale_`` per device and dtype,
then the optimizer step, or for fused optimizers the scale and inf flag passed into the
fused kernel) and ``update()`` (``_amp_update_scale_``). The scaler is a copy; its scale
and growth-tracker tensors are graph inputs like the optimizer state, so ``update()``
writes into them and every trial restores them. Phases: ``scale(loss)`` and its
backward are *backward* (they exist only to seed the backward pass); unscaling, the
inf/NaN check, the optimizer step and ``update()`` are *optimizer*.

The one data-dependent decision, whether the step is skipped because a gradient is
inf/NaN (``scaler.step`` reads the flag with ``.item()``), is taken once while tracing,
on the real tensors of this step. Replays start from the same state, so they would take
the same branch: the graph measures the step the example batch really takes. When that
step overflows, it updates no parameter (a fused optimizer decides inside its kernel), and
the graph notes say so.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from magneton.capture.annotate import ValueObserver, annotate
from magneton.capture.strategies import _quiet_tracers, _short_error
from magneton.capture.torch_compat import (
    annotate_nodes,
    annotate_phase,
    clone_grad_scaler,
    full_export_stack_traces,
    is_gradient_accumulation,
    make_fx_data_dependent_ok,
    preserve_node_meta,
    reset_grad_scaler_iteration,
    tag_backward_with_forward_seq_nr,
    tree_flatten,
)
from magneton.capture.values import InputSnapshot
from magneton.errors import CaptureError, WorkloadError
from magneton.graph import GraphPiece, OpGraph, OpNode, TrainingInfo, TrainParam
from magneton.workload import TrainStep, Workload

PHASES = ("forward", "backward", "optimizer")
TRAIN_CAPTURE_METHOD = "make_fx (training step)"
_MODEL_PREFIX = "model."


class _LossModule(nn.Module):
    """The model plus its loss as one module, so functional_call can swap the parameters of both."""

    def __init__(self, step: TrainStep) -> None:
        super().__init__()
        self.model = step.model
        self.loss_fn = step.loss_fn
        self.compute_loss = step.compute_loss

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.compute_loss is not None:
            return self.compute_loss(self.model, *args, **kwargs)
        assert self.loss_fn is not None
        return self.loss_fn(self.model(*args, **kwargs))


@dataclass
class TrainingRun:
    """A training step on clones of the user's state, runnable eagerly (``workload``) or traced (``trace``)."""

    target: str
    step: TrainStep
    wrapper: _LossModule
    param_names: list[str]
    buffer_names: list[str]
    flat_inputs: list[torch.Tensor]  # params, buffers, optimizer state tensors, batch tensors: the graph's inputs
    optimizer: torch.optim.Optimizer | None
    initial_state: dict[Any, dict[str, Any]]
    batch_leaves: list[Any]
    batch_spec: Any
    batch_positions: list[int]
    counts: tuple[int, int, int]  # params, buffers, optimizer and scaler state tensors
    pristine: InputSnapshot | None = None  # flat_inputs as prepared, before any step ran on them
    scaler: Any = None  # a copy of the step's GradScaler; its scale and growth tracker are among flat_inputs
    scaler_tensors: tuple[torch.Tensor, torch.Tensor] | None = None  # (scale, growth tracker) of ``scaler``
    grad_names: list[str] = field(default_factory=list)  # parameters whose gradient the last step returned, in order

    def __post_init__(self) -> None:
        if self.pristine is None:
            self.pristine = InputSnapshot(self.flat_inputs)

    def restore(self) -> None:
        """Parameters, buffers, optimizer state and batch back to the state before the first step."""
        assert self.pristine is not None
        self.pristine.restore()
        self.reset_optimizer_state()

    def reset_optimizer_state(self) -> None:
        """The optimizer's per-parameter state back to its first-step structure (tensor values: InputSnapshot)."""
        if self.optimizer is not None:
            self.optimizer.state.clear()
            self.optimizer.state.update({p: dict(s) for p, s in self.initial_state.items()})
        if self.scaler is not None:  # a step that raised mid-iteration must not leave it half done
            reset_grad_scaler_iteration(self.scaler)

    def run(self, *tensors: torch.Tensor, tracing: bool = False) -> tuple[torch.Tensor, ...]:
        """One step: the loss, then the gradients; the optimizer updates the cloned parameters in place."""
        n_params, n_buffers, n_state = self.counts
        params = list(tensors[:n_params])
        buffers = list(tensors[n_params : n_params + n_buffers])
        batch = tensors[n_params + n_buffers + n_state :]
        leaves = list(self.batch_leaves)
        for position, tensor in zip(self.batch_positions, batch, strict=True):
            leaves[position] = tensor
        args, kwargs = self.batch_spec.unflatten(leaves)
        values = {
            **dict(zip(self.param_names, params, strict=True)),
            **dict(zip(self.buffer_names, buffers, strict=True)),
        }
        dtype = self.step.autocast_dtype
        device_type = params[0].device.type if params else "cpu"
        cast = torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with annotate_phase("forward"), torch.enable_grad(), cast:
            loss = torch.func.functional_call(self.wrapper, values, tuple(args), dict(kwargs))
        if not tracing:
            check_loss(self.target, loss)
        named = [(name, p) for name, p in zip(self.param_names, params, strict=True) if p.requires_grad]
        trainable = [p for _, p in named]
        seed = loss
        if self.scaler is not None:
            # The scaled loss exists only to seed the backward pass; the energy pass runs the step under no_grad.
            with annotate_phase("backward"), torch.enable_grad():
                seed = self.scaler.scale(loss)
        if tracing:
            tag_backward_with_forward_seq_nr(seed)
        with annotate_phase("backward"):
            grads = torch.autograd.grad(seed, trainable, allow_unused=True)
        self.grad_names = [name for (name, _), grad in zip(named, grads, strict=True) if grad is not None]
        if self.optimizer is not None:
            for param, grad in zip(trainable, grads, strict=True):
                param.grad = grad
            with annotate_phase("optimizer"), torch.no_grad():
                self._optimizer_step()
        return (loss.detach(), *[g for g in grads if g is not None])

    def _optimizer_step(self) -> None:
        optimizer, scaler = self.optimizer, self.scaler
        assert optimizer is not None

        # Named ``forward``: make_fx keeps stack-trace frames from the first one named so, and without one an
        # optimizer written by the user (a custom step()) would get no source line.
        def forward() -> None:
            if scaler is not None:
                # Unscales the gradients in place (the returned ones too) and skips the update on inf/NaN.
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()

        forward()

    def model_and_batch(self) -> list[torch.Tensor]:
        """The inputs two steps must share to be compared: parameters, buffers, batch (not optimizer/scaler state)."""
        n_params, n_buffers, n_state = self.counts
        return [*self.flat_inputs[: n_params + n_buffers], *self.flat_inputs[n_params + n_buffers + n_state :]]

    def eager_step(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The step as the user runs it (eagerly), from the same optimizer state every time."""
        self.reset_optimizer_state()
        return self.run(*tensors)

    def workload(self) -> Workload:
        return Workload(self.eager_step, tuple(self.flat_inputs), {})


def check_loss(target: str, loss: Any) -> None:
    """A loss must be a scalar tensor that depends on the trainable parameters."""
    if not isinstance(loss, torch.Tensor):
        raise WorkloadError(target, f"the loss is a {type(loss).__name__}, not a torch.Tensor; return a scalar tensor")
    if loss.numel() != 1:
        raise WorkloadError(
            target,
            f"the loss is not a scalar: shape {list(loss.shape)}; reduce it (e.g. .mean() or .sum()) "
            "to one value before the backward pass",
        )
    if not loss.requires_grad:
        raise WorkloadError(
            target,
            "the loss does not depend on any trainable parameter (it has no grad_fn); was it computed under "
            "torch.no_grad(), detached, or from .item()?",
        )


def _clone_optimizer(
    optimizer: torch.optim.Optimizer, clone_of: dict[int, torch.Tensor]
) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    groups = []
    for group in optimizer.param_groups:
        new_group = {key: value for key, value in group.items() if key != "params"}
        new_group["params"] = [clone_of[id(p)] for p in group["params"]]
        groups.append(new_group)
    # Every group already holds all its hyperparameters; the constructor fills nothing in.
    clone = type(optimizer)(groups)  # type: ignore[call-arg]  # subclasses default their hyperparameters
    # A deep copy: load_state_dict may keep the given tensors, and the user's must never be touched.
    clone.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    state_tensors = [
        value
        for group in clone.param_groups
        for p in group["params"]
        for value in clone.state.get(p, {}).values()
        if isinstance(value, torch.Tensor)
    ]
    return clone, state_tensors


def prepare(target: str, step: TrainStep) -> TrainingRun:
    """Clone what the step changes, so neither tracing nor measuring touches the user's model or optimizer."""
    wrapper = _LossModule(step)
    named_params = list(wrapper.named_parameters())
    named_buffers = list(wrapper.named_buffers())
    clone_of: dict[int, torch.Tensor] = {}
    params = []
    for _, param in named_params:
        clone = param.detach().clone().requires_grad_(param.requires_grad)
        clone_of[id(param)] = clone
        params.append(clone)
    buffers = [buffer.detach().clone() for _, buffer in named_buffers]
    optimizer: torch.optim.Optimizer | None = None
    state_tensors: list[torch.Tensor] = []
    if step.optimizer is not None:
        optimizer, state_tensors = _clone_optimizer(step.optimizer, clone_of)
    scaler, scaler_tensors = None, None
    if step.scaler is not None:
        device = next((p.device for p in params if p.requires_grad), torch.device("cpu"))
        scaler, scale, growth_tracker = clone_grad_scaler(step.scaler, device)
        scaler_tensors = (scale, growth_tracker)
        state_tensors = [*state_tensors, scale, growth_tracker]
    leaves, spec = tree_flatten((tuple(step.args), dict(step.kwargs)))
    positions = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
    batch = [leaves[i].detach().clone() for i in positions]
    return TrainingRun(
        target=target,
        step=step,
        wrapper=wrapper,
        param_names=[name for name, _ in named_params],
        buffer_names=[name for name, _ in named_buffers],
        flat_inputs=[*params, *buffers, *state_tensors, *batch],
        optimizer=optimizer,
        initial_state={p: dict(s) for p, s in optimizer.state.items()} if optimizer is not None else {},
        batch_leaves=leaves,
        batch_spec=spec,
        batch_positions=positions,
        counts=(len(params), len(buffers), len(state_tensors)),
        scaler=scaler,
        scaler_tensors=scaler_tensors,
    )


@contextlib.contextmanager
def _module_annotations(model: nn.Module) -> Iterator[None]:
    """Tag each traced node with the module that ran it (make_fx's own module stack stays empty here)."""
    open_contexts: list[contextlib.AbstractContextManager[None]] = []
    handles = []
    for name, module in model.named_modules():
        path, kind = name, type(module).__name__

        def enter(_module: nn.Module, _args: Any, path: str = path, kind: str = kind) -> None:
            context = annotate_nodes({"magneton_module": path, "magneton_module_type": kind})
            context.__enter__()
            open_contexts.append(context)

        def leave(_module: nn.Module, _args: Any, _output: Any) -> None:
            if open_contexts:
                open_contexts.pop().__exit__(None, None, None)

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        while open_contexts:  # a module that raised left its context open
            open_contexts.pop().__exit__(None, None, None)


def capture_training(run: TrainingRun, observer: ValueObserver | None = None) -> OpGraph:
    """Trace ``run`` once with make_fx and annotate every node with its phase and forward source.

    ``observer`` sees every operator's real output during the annotation run (the diff's value fingerprints).
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    run.restore()  # a step run before (an output check) must not shift the state the graph starts from
    snapshot = InputSnapshot(run.flat_inputs)

    def traced(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return run.run(*tensors, tracing=True)

    run.reset_optimizer_state()
    scale_before = float(run.scaler_tensors[0]) if run.scaler_tensors is not None else None
    scale_after = None
    masters: set[str] = set()
    try:
        # Full stack traces: a loss function is not named ``forward`` and would otherwise get no source line.
        with _quiet_tracers(), preserve_node_meta(), full_export_stack_traces(), _module_annotations(run.step.model):
            module = make_fx(
                traced,
                tracing_mode="real",
                record_module_stack=True,
                record_stack_traces=True,
                **make_fx_data_dependent_ok(),
            )(*run.flat_inputs)
        scale_after = float(run.scaler_tensors[0]) if run.scaler_tensors is not None else None
        masters = _float32_masters(run)
    except WorkloadError:
        raise
    except Exception as err:  # make_fx raises many types; the user needs the one line
        raise CaptureError(f"make_fx could not trace the training step: {_short_error(err)}") from err
    finally:
        snapshot.restore()
        run.reset_optimizer_state()
    graph = OpGraph(TRAIN_CAPTURE_METHOD, [GraphPiece("main", module, list(run.flat_inputs))], [])
    graph.notes.append(
        "training step traced with make_fx over forward + torch.autograd.grad + optimizer.step() on real tensors "
        "(clones of the parameters and optimizer state; the model and optimizer passed in are not modified)"
    )
    if run.optimizer is None:
        graph.notes.append("no optimizer given: the step is forward, loss and backward only")
    if scale_before is not None:
        graph.notes.append(_scaler_note(scale_before, scale_after))
    with torch.no_grad():  # the graph holds the backward explicitly; replaying it needs no autograd
        annotate(graph, observer)
    graph.mutates_inputs = snapshot.changed() or run.optimizer is not None
    snapshot.restore()
    run.reset_optimizer_state()
    assign_phases(graph, module)
    graph.training = training_info(run, module, graph, masters)
    graph.device = str(run.flat_inputs[0].device) if run.flat_inputs else "cpu"
    return graph


def _scaler_note(scale_before: float, scale_after: float | None) -> str:
    traced = (
        f"GradScaler step traced at scale {scale_before:g}: loss scaled, gradients unscaled and checked for inf/NaN "
        "in the optimizer phase, scale updated"
    )
    if scale_after is not None and scale_after < scale_before:
        # update() backs the scale off only when the check found inf/NaN, and then step() skipped the update.
        return (
            f"{traced}; at this scale the gradients overflow (inf/NaN): the scale backed off to {scale_after:g} and, "
            "as in training, the step updates no parameter (the optimizer step is left out of the graph, or a fused "
            "kernel skips it). Lower the scaler's scale (init_scale) to profile a step that updates the parameters"
        )
    return traced


def _is_zero(value: Any) -> bool:
    try:
        return float(value) == 0.0
    except (TypeError, ValueError):  # an optimizer without a numeric lr: assume it updates
        return False


def _frozen_by_lr(group: dict[str, Any]) -> bool:
    """A param group whose lr is 0 for good: not a scheduler's warm-up (an lr scheduler keeps ``initial_lr``)."""
    return _is_zero(group.get("lr")) and ("initial_lr" not in group or _is_zero(group["initial_lr"]))


def _float32_masters(run: TrainingRun) -> set[str]:
    """Half-precision parameters for which the optimizer keeps a float32 tensor of their shape (a master copy)."""
    found: set[str] = set()
    if run.optimizer is None:
        return found
    for name, param in zip(run.param_names, run.flat_inputs[: run.counts[0]], strict=True):
        if param.dtype not in (torch.float16, torch.bfloat16):
            continue
        state = run.optimizer.state.get(param, {})
        if any(
            isinstance(v, torch.Tensor) and v.dtype == torch.float32 and v.shape == param.shape for v in state.values()
        ):
            found.add(name)
    return found


def training_info(
    run: TrainingRun, module: torch.fx.GraphModule, graph: OpGraph, masters: set[str] | None = None
) -> TrainingInfo:
    """The parameters behind the graph's inputs, whether the optimizer updates each, and which node is its gradient.

    ``masters``: parameters whose float32 master copy the optimizer keeps in its state (seen after the traced step).
    """
    placeholders = [node.name for node in module.graph.nodes if node.op == "placeholder"]
    output = next(node for node in module.graph.nodes if node.op == "output")
    returned = output.args[0] if isinstance(output.args[0], (tuple, list)) else (output.args[0],)
    node_of_fx = {node.fx_name: node.id for node in graph.nodes if node.piece == 0}
    gradient_of: dict[str, str | None] = {}
    for name, value in zip(run.grad_names, returned[1:], strict=False):
        gradient_of[name] = node_of_fx.get(value.name) if isinstance(value, torch.fx.Node) else None
    frozen_of: dict[int, bool] = {}
    if run.optimizer is not None:
        for group in run.optimizer.param_groups:
            for param in group["params"]:
                frozen_of[id(param)] = _frozen_by_lr(group)
    n_params = run.counts[0]
    parameters = []
    for index, (name, param) in enumerate(zip(run.param_names, run.flat_inputs[:n_params], strict=True)):
        updated = None
        if run.optimizer is not None:
            updated = id(param) in frozen_of and not frozen_of[id(param)]
        parameters.append(
            TrainParam(
                name=name.removeprefix(_MODEL_PREFIX),
                placeholder=placeholders[index],
                dtype=str(param.dtype).removeprefix("torch."),
                requires_grad=param.requires_grad,
                updated=updated,
                gradient_node=gradient_of.get(name),
                float32_state=name in (masters or set()),
            )
        )
    return TrainingInfo(
        parameters=tuple(parameters),
        optimizer=type(run.optimizer).__name__ if run.optimizer is not None else None,
        scaler=run.scaler is not None,
    )


def _phase_of(fx_node: torch.fx.Node, previous: str) -> str:
    custom = fx_node.meta.get("custom") or {}
    phase = custom.get("magneton_phase") if isinstance(custom, dict) else None
    if phase in PHASES:
        return str(phase)
    if fx_node.meta.get("autograd_backward"):
        return "backward"
    # Untagged (glue between phases, or a torch without annotations): the phase of the node before it.
    return previous


def assign_phases(graph: OpGraph, module: torch.fx.GraphModule) -> None:
    """Tag every node with its phase; give each backward node the source and module of its forward operator."""
    fx_nodes = {node.name: node for node in module.graph.nodes}
    forward_by_seq: dict[int, OpNode] = {}
    previous = "forward"
    for node in graph.nodes:
        fx_node = fx_nodes[node.fx_name]
        node.phase = previous = _phase_of(fx_node, previous)
        custom = fx_node.meta.get("custom") or {}
        if isinstance(custom, dict) and "magneton_module" in custom:
            node.module_path = str(custom["magneton_module"])
            node.module_type = str(custom.get("magneton_module_type", ""))
        else:
            node.module_path = node.module_path.removeprefix(_MODEL_PREFIX).removeprefix("model")
        seq_nr = fx_node.meta.get("seq_nr")
        if node.phase == "forward" and isinstance(seq_nr, int) and node.source is not None:
            best = forward_by_seq.get(seq_nr)
            # Views share their op's seq_nr; the computing operator is the one to point at.
            if best is None or (best.zero_cost and not node.zero_cost):
                forward_by_seq[seq_nr] = node
    for node in graph.nodes:
        if node.phase != "backward":
            continue
        meta = fx_nodes[node.fx_name].meta
        seq_nr = meta.get("seq_nr")
        forward = forward_by_seq.get(seq_nr) if isinstance(seq_nr, int) else None
        if is_gradient_accumulation(meta):
            forward = None  # sums the gradients of a tensor used twice; its seq_nr is the last grad_fn's
        if forward is not None:
            node.forward_node = forward.id
            node.source = forward.source
            node.module_path, node.module_type = forward.module_path, forward.module_type
        else:
            node.source = None  # a backward frame is the engine's, not a user line
    if not forward_by_seq:
        graph.notes.append("no forward operator carried a seq_nr: backward operators are not tied to source lines")


def training_workload(target: str, step: TrainStep) -> tuple[OpGraph, Workload, TrainingRun]:
    """Run the step once eagerly (the user's errors surface here), capture it, and return what the pass measures."""
    from magneton.blame import classify

    run = prepare(target, step)
    snapshot = InputSnapshot(run.flat_inputs)
    try:
        run.eager_step(*run.flat_inputs)
    except WorkloadError:
        raise
    except Exception as err:
        raise classify(target, err, "running the training step") from err
    finally:
        snapshot.restore()
        run.reset_optimizer_state()
    graph = capture_training(run)
    return graph, run.workload(), run


__all__ = [
    "PHASES",
    "TRAIN_CAPTURE_METHOD",
    "TrainingRun",
    "capture_training",
    "check_loss",
    "prepare",
    "training_info",
    "training_workload",
]
