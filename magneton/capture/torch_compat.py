"""Every private torch API Magneton relies on, in one place, each with the public API it lacks.

Nothing outside this module touches a ``torch._*`` name, a ``_``-prefixed
attribute of a torch object, or a name torch generates internally. Each use says
which public API would replace it. ``tests/test_torch_compat.py`` exercises every
entry; ``just compat-oldest`` runs it against the oldest torch pyproject accepts.
Where an entry changes upstream, capture degrades (default stack traces, ops not
recognised as mutating) rather than breaking.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

# --- dispatch modes ------------------------------------------------------------------------------------------------
# Missing public API: the base class of ``__torch_dispatch__`` modes has no public module (the extending-torch
# notes document it at ``torch.utils._python_dispatch``); capture.cost counts FLOPs per ATen op with one.
from torch.utils._python_dispatch import TorchDispatchMode

# --- pytrees -------------------------------------------------------------------------------------------------------
# Missing public API: torch has no public pytree module (``torch.utils.pytree`` does not exist through torch 2.13);
# ``torch.utils._pytree`` is what torch.export and torch.func use themselves, and it is in every torch >= 2.0.
from torch.utils._pytree import (
    keystr,
    tree_flatten,
    tree_flatten_with_path,
    tree_map,
)

# --- operator overloads --------------------------------------------------------------------------------------------


def is_op_overload(target: Any) -> bool:
    """Whether an fx node's target is an ATen/custom operator overload (``aten.add.Tensor``).

    Missing public API: ``OpOverload`` lives in ``torch._ops``; there is no public type or predicate for
    "this callable is a dispatcher operator overload".
    """
    return isinstance(target, torch._ops.OpOverload)


def mutates_arguments(target: Any) -> bool:
    """Whether an operator overload writes into any of its arguments (``add_``, ``index_put_``, ``out=`` ops).

    Missing public API: the operator's schema is only reachable as ``OpOverload._schema``; torch offers no public
    "is this op in-place / does it alias-write" query.
    """
    return is_op_overload(target) and bool(target._schema.is_mutable)


# --- names torch.export generates ----------------------------------------------------------------------------------

# Missing public API: newer torch.export inserts a submodule call named ``_guards_fn`` that checks input guards;
# nothing marks it as non-user code other than its name.
EXPORT_GUARDS_MODULE = "_guards_fn"

# Missing public API: module paths in ``nn_module_stack`` carry the tracer's name for the root module
# (dynamo's ``L__self__`` / ``L['self']``); there is no public accessor for the plain path.
ROOT_MODULE_PREFIXES = ("L__self__.", "L['self'].")


# --- stack traces recorded by torch.export -------------------------------------------------------------------------

# Patching a class attribute is process-wide: two threads exporting at once must not undo each other's patch.
_EXPORT_LOCK = threading.RLock()


@contextlib.contextmanager
def full_export_stack_traces() -> Iterator[None]:
    """Make torch.export and make_fx keep every frame below the first ``forward``.

    By default both keep only frames *named* ``forward`` (make_fx does in torch 2.13),
    so an op in a helper method or a plain-function workload would point at the wrong
    line or none: generate's own work (stopping criteria, token selection) had none.
    Our wrapper's forward is always the outermost one, so nothing of the user's
    is lost.

    Missing public API: no option of ``torch.export.export`` controls which frames its tracer keeps; the filter
    is ``TracerBase._filter_traceback_frames`` reading ``_record_forward_stack_traces_only``. Where either is
    absent (as in torch 2.4) export's default traces are used. The patch is global to the process, so exports
    inside this context run one at a time.
    """
    # One export at a time: the patch is process-wide, and older torch's export is not safe to run
    # from two threads at once either. The original is read under the lock: read outside it, a second
    # thread would take the first one's patch for the original and restore that.
    with _EXPORT_LOCK:
        tracer_base: Any = getattr(torch.fx.proxy, "TracerBase", None)
        original = getattr(tracer_base, "_filter_traceback_frames", None)
        if original is None or not hasattr(tracer_base, "_record_forward_stack_traces_only"):
            yield
            return

        def keep_from_first_forward(self: Any, summary: Any) -> Any:
            forward_only = self._record_forward_stack_traces_only
            self._record_forward_stack_traces_only = False
            try:
                return original(self, summary)
            finally:
                self._record_forward_stack_traces_only = forward_only

        tracer_base._filter_traceback_frames = keep_from_first_forward
        try:
            yield
        finally:
            tracer_base._filter_traceback_frames = original


# --- make_fx -------------------------------------------------------------------------------------------------------


def make_fx_data_dependent_ok() -> dict[str, Any]:
    """make_fx keyword that lets real-tensor tracing run ``.item()``-style data-dependent ops.

    Missing public API: make_fx's default refuses such ops and only the private ``_error_on_data_dependent_ops``
    keyword turns that off.
    """
    return {"_error_on_data_dependent_ops": False}


# --- training capture: tying backward operators to the forward operator they differentiate -------------------------


def preserve_node_meta() -> contextlib.AbstractContextManager[None]:
    """Let make_fx copy the tracing context's metadata (``seq_nr``, ``autograd_backward``, ``custom``) onto nodes.

    Missing public API: ``torch.fx.traceback.preserve_node_meta`` is how aot_autograd does it; it is not
    documented as public, and make_fx has no option for it.
    """
    import torch.fx.traceback as fx_traceback

    return fx_traceback.preserve_node_meta()


def annotate_phase(phase: str) -> contextlib.AbstractContextManager[None]:
    """Nodes traced inside get ``node.meta["custom"]["magneton_phase"] = phase``."""
    return annotate_nodes({"magneton_phase": phase})


def annotate_nodes(values: dict[str, str]) -> contextlib.AbstractContextManager[None]:
    """Nodes traced inside get ``values`` in ``node.meta["custom"]`` (nested contexts add to the outer ones).

    Missing public API: ``torch.fx.traceback.annotate`` is marked not backward compatible; nothing public
    attaches user metadata to the nodes make_fx creates.
    """
    import torch.fx.traceback as fx_traceback

    annotate = getattr(fx_traceback, "annotate", None)
    if annotate is None:  # older torch: phases then come from the autograd_backward mark and trace order
        return contextlib.nullcontext()
    result: contextlib.AbstractContextManager[None] = annotate(values)
    return result


def tag_backward_with_forward_seq_nr(loss: torch.Tensor) -> bool:
    """Before ``torch.autograd.grad(loss, ...)`` under make_fx: each backward node gets the ``seq_nr`` of its grad_fn.

    The forward operator that created that grad_fn carries the same ``seq_nr``, so a backward node can be
    traced back to the forward source line it differentiates. Returns False where this torch lacks the hooks.

    Missing public API: aot_autograd's ``setup_stacktrace_preservation_hooks`` registers grad_fn pre-hooks
    that set the tracing context's ``grad_fn_seq_nr``; there is no public switch for it.
    """
    try:
        from torch._functorch._aot_autograd.logging_utils import setup_stacktrace_preservation_hooks
    except ImportError:
        return False
    if loss.grad_fn is None:
        return False
    setup_stacktrace_preservation_hooks([loss.grad_fn])
    return True


def is_gradient_accumulation(meta: dict[str, Any]) -> bool:
    """Whether a backward node sums the gradients of a tensor used twice (it differentiates no single forward op).

    Missing public API: aot_autograd's hooks mark such nodes only by appending
    ``torch.fx.traceback.GRADIENT_ACC_SPECIAL_STACK`` to their stack trace.
    """
    import torch.fx.traceback as fx_traceback

    marker = getattr(fx_traceback, "GRADIENT_ACC_SPECIAL_STACK", None)
    return isinstance(marker, str) and bool(marker) and marker in str(meta.get("stack_trace") or "")


# --- training capture: a GradScaler's state as tensors the graph reads and writes ------------------------------------


def clone_grad_scaler(scaler: Any, device: torch.device) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """A copy of ``scaler`` (same class, scale, growth tracker and factors) with its state tensors on ``device``.

    Returns the copy, its scale tensor and its growth-tracker tensor: the tensors ``scale()`` reads and
    ``update()`` rewrites in place, which a captured step takes as inputs so every trial can restore them.
    The user's scaler is only read (``get_scale()`` through pickling's ``__getstate__``).

    Missing public API: GradScaler gives its scale and growth tracker only as Python numbers
    (``get_scale()``, ``state_dict()``); the tensors themselves are the private ``_scale``/``_growth_tracker``.
    """
    import copy

    clone = copy.deepcopy(scaler)  # __getstate__: the state as numbers, the tensors made again lazily
    clone.scale(torch.ones((), device=device))  # public: creates the scale and growth tracker on ``device``
    return clone, clone._scale, clone._growth_tracker


def grad_scaler_device_type(scaler: Any) -> str:
    """The device type a GradScaler was built for (``"cuda"``, ``"cpu"``, ...).

    Missing public API: the constructor's ``device`` is kept only as the private ``_device``.
    """
    return str(getattr(scaler, "_device", "cuda")).split(":")[0]


def grad_scaler_mid_iteration(scaler: Any) -> bool:
    """Whether ``unscale_()`` or ``step()`` ran since the scaler's last ``update()`` (its per-optimizer state is set).

    Missing public API: GradScaler keeps that state in the private ``_per_optimizer_states`` and has no query.
    """
    return bool(getattr(scaler, "_per_optimizer_states", None))


def reset_grad_scaler_iteration(scaler: Any) -> None:
    """Forget a half-finished iteration (a step that raised between ``unscale_()`` and ``update()``).

    Missing public API: only ``update()`` clears the private ``_per_optimizer_states``, and it needs a finished step.
    """
    states = getattr(scaler, "_per_optimizer_states", None)
    if states is not None:
        states.clear()


__all__ = [
    "clone_grad_scaler",
    "grad_scaler_device_type",
    "grad_scaler_mid_iteration",
    "reset_grad_scaler_iteration",
    "EXPORT_GUARDS_MODULE",
    "is_gradient_accumulation",
    "annotate_nodes",
    "annotate_phase",
    "preserve_node_meta",
    "tag_backward_with_forward_seq_nr",
    "ROOT_MODULE_PREFIXES",
    "TorchDispatchMode",
    "full_export_stack_traces",
    "is_op_overload",
    "keystr",
    "make_fx_data_dependent_ok",
    "mutates_arguments",
    "tree_flatten",
    "tree_flatten_with_path",
    "tree_map",
]


ROOT_CALL_KEY = "magneton_root_call_"  # nn_module_stack key of the k-th call of the root module


@contextlib.contextmanager
def module_stack_from_hooks(root: Any) -> Iterator[None]:
    """Give make_fx nodes the module they ran in (``nn_module_stack``), as torch.export does.

    make_fx traces a function, so it records no module stack for the modules called inside it.
    Forward hooks on every submodule keep ``torch.fx.traceback.current_meta["nn_module_stack"]``
    in step with the modules entered, and under ``preserve_node_meta`` the tracer copies that
    field onto every node it creates. Missing public API: no public way to annotate nodes while
    make_fx traces. Private: ``torch.fx.traceback.preserve_node_meta`` and ``current_meta``; if
    they change, nodes keep an empty module path (the root), as before.
    """
    import torch.fx.traceback as fx_traceback

    preserve = getattr(fx_traceback, "preserve_node_meta", None)
    if not isinstance(root, torch.nn.Module):  # a bound method such as model.generate: hook its model
        root = getattr(root, "__self__", None)
    if not isinstance(root, torch.nn.Module) or preserve is None or not hasattr(fx_traceback, "current_meta"):
        yield
        return
    stack: list[tuple[str, tuple[str, type]]] = []

    def publish() -> None:
        meta = fx_traceback.current_meta
        if stack:
            meta["nn_module_stack"] = dict(stack)
        else:
            meta.pop("nn_module_stack", None)

    def enter(name: str) -> Any:
        def hook(module: torch.nn.Module, args: Any) -> None:
            stack.append((name, (name, type(module))))
            publish()

        return hook

    def leave(module: torch.nn.Module, args: Any, output: Any) -> None:
        if stack:
            stack.pop()
        publish()

    calls = [0]

    def enter_root(module: torch.nn.Module, args: Any) -> None:
        # The root's ops keep the empty path; the key counts its calls (decoding steps of generate).
        calls[0] += 1
        stack.append((f"{ROOT_CALL_KEY}{calls[0]}", ("", type(module))))
        publish()

    handles = [root.register_forward_pre_hook(enter_root), root.register_forward_hook(leave)]
    for name, module in root.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(enter(name)))
            handles.append(module.register_forward_hook(leave))
    try:
        with preserve():
            yield
    finally:
        for handle in handles:
            handle.remove()
