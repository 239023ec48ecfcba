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
    """Make torch.export keep every frame below the first ``forward``, as make_fx does.

    By default export keeps only frames *named* ``forward``, so an op in a helper
    method or a plain-function workload would point at the wrong line or none.
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


__all__ = [
    "EXPORT_GUARDS_MODULE",
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
