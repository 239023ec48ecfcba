"""Capturing a workload's operator graph with torch.fx.

Order of preference: torch.export (non-strict, ATen level, stack traces and
module stacks), then make_fx (real tensors: data-dependent Python control flow
is specialised to the example inputs), then torch.fx.symbolic_trace (module
level). A program none of these can capture whole is captured piecewise: each
child module separately, the glue between them left unmeasured (and visible as
missing coverage). The method used and every failure on the way are reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import operator
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from magneton.errors import CaptureError
from magneton.graph import GraphPiece, OpGraph, OpNode, TensorMeta
from magneton.source import innermost_user_frame
from magneton.workload import Workload

_WRAPPER_PREFIX = "inner"
_MAX_PIECEWISE_DEPTH = 3


def tensor_leaves(value: Any) -> list[torch.Tensor]:
    """Tensors inside any output: tuples, dicts, dataclasses (HF ModelOutput), caches."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensor_leaves(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensor_leaves(item)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for f in dataclasses.fields(value) for t in tensor_leaves(getattr(value, f.name))]
    to_tuple = getattr(value, "to_tuple", None)
    if callable(to_tuple):
        return tensor_leaves(to_tuple())
    return []  # caches and other objects: not part of what we profile


class InputSnapshot:
    """Pristine copies of input tensors, to undo a program that modifies its own inputs.

    Capture with real tensors and every replay of the forward pass run the
    user's program on the user's tensors; an in-place update (a KV cache, say)
    would otherwise make each run see different values than the last.
    """

    def __init__(self, values: Any) -> None:
        self.tensors = tensor_leaves(values)
        self.copies = [tensor.detach().clone() for tensor in self.tensors]

    def changed(self) -> bool:
        return any(not torch.equal(t, c) for t, c in zip(self.tensors, self.copies, strict=True))

    def restore(self) -> None:
        with torch.no_grad():
            for tensor, copy in zip(self.tensors, self.copies, strict=True):
                tensor.copy_(copy)


class _FlatOutput(nn.Module):
    """Wraps the workload so every capture method sees a plain tuple of tensors out."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        if isinstance(fn, nn.Module):
            self.inner = fn
        else:
            self._fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        fn = self.inner if hasattr(self, "inner") else self._fn
        return tuple(tensor_leaves(fn(*args, **kwargs)))


def _short_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first[:300]}"


@contextlib.contextmanager
def _full_stack_traces() -> Iterator[None]:
    """Make torch.export keep every frame below the first ``forward``, as make_fx does.

    By default export keeps only frames *named* ``forward``, so an op in a helper
    method or a plain-function workload would point at the wrong line or none.
    Our wrapper's forward is always the outermost one, so nothing of the user's
    is lost. Private API: if it changes, export's default traces are used.
    """
    tracer_base = getattr(torch.fx.proxy, "TracerBase", None)
    original = getattr(tracer_base, "_filter_traceback_frames", None)
    if tracer_base is None or original is None:
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


def _capture_export(workload: Workload) -> GraphPiece:
    with _full_stack_traces():
        program = torch.export.export(_FlatOutput(workload.fn), workload.args, dict(workload.kwargs), strict=False)
    flat, _ = tree_flatten((workload.args, dict(workload.kwargs)))
    return GraphPiece("main", program.module(), flat)


def _capture_make_fx(workload: Workload) -> GraphPiece:
    from torch.fx.experimental.proxy_tensor import make_fx

    flat, spec = tree_flatten((workload.args, dict(workload.kwargs)))
    tensor_positions = [i for i, leaf in enumerate(flat) if isinstance(leaf, torch.Tensor)]
    wrapper = _FlatOutput(workload.fn)

    def run_flat(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves = list(flat)
        for position, tensor in zip(tensor_positions, tensors, strict=True):
            leaves[position] = tensor
        args, kwargs = spec.unflatten(leaves)
        return wrapper(*args, **kwargs)

    module = make_fx(
        run_flat,
        tracing_mode="real",
        record_module_stack=True,
        record_stack_traces=True,
        _error_on_data_dependent_ops=False,
    )(*[flat[i] for i in tensor_positions])
    return GraphPiece("main", module, [flat[i] for i in tensor_positions])


def _capture_symbolic(workload: Workload) -> GraphPiece:
    import inspect

    if not isinstance(workload.fn, nn.Module):
        raise CaptureError("symbolic_trace needs an nn.Module")
    tracer = torch.fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(workload.fn)
    module = torch.fx.GraphModule(workload.fn, graph)
    bound = inspect.signature(workload.fn.forward).bind(*workload.args, **workload.kwargs)
    bound.apply_defaults()
    return GraphPiece("main", module, list(bound.arguments.values()))


CAPTURE_METHODS: tuple[tuple[str, Callable[[Workload], GraphPiece]], ...] = (
    ("torch.export", _capture_export),
    ("make_fx", _capture_make_fx),
    ("torch.fx.symbolic_trace", _capture_symbolic),
)


def capture(workload: Workload) -> OpGraph:
    """Capture ``workload`` whole if any method can, else piecewise; raise CaptureError if nothing works."""
    notes: list[str] = []
    inputs = InputSnapshot((workload.args, dict(workload.kwargs)))
    with torch.no_grad():
        result = _capture_whole(workload, notes)
        inputs.restore()
        if result is not None:
            method, piece = result
            graph = OpGraph(method, [piece], [], notes)
        elif isinstance(workload.fn, nn.Module):
            pieces = _capture_pieces(workload.fn, workload, notes, prefix="", depth=0)
            if not pieces:
                raise CaptureError("no capture method worked, whole or piecewise:\n  " + "\n  ".join(notes))
            notes.append(
                f"captured piecewise in {len(pieces)} pieces; code between them is not measured "
                "per operator (see coverage)"
            )
            graph = OpGraph("piecewise", pieces, [], notes)
        else:
            raise CaptureError("no capture method worked:\n  " + "\n  ".join(notes))
        # A piece's inputs are intermediates of the eager run: a piece may write into them too.
        piece_inputs = (
            InputSnapshot([piece.flat_inputs for piece in graph.pieces]) if graph.method == "piecewise" else None
        )
        annotate(graph)
    graph.mutates_inputs = inputs.changed() or (piece_inputs is not None and piece_inputs.changed())
    inputs.restore()
    if piece_inputs is not None:
        piece_inputs.restore()
    if graph.mutates_inputs:
        notes.append("the program modifies its own inputs in place; Magneton restores them before every run")
    graph.device = workload_device(workload)
    return graph


@contextlib.contextmanager
def _quiet_tracers() -> Iterator[None]:
    """A failed tracer logs pages of graphs; its error is summarised in the report instead."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _capture_whole(workload: Workload, notes: list[str]) -> tuple[str, GraphPiece] | None:
    for index, (method, capture_fn) in enumerate(CAPTURE_METHODS):
        try:
            with _quiet_tracers():
                piece = capture_fn(workload)
        except Exception as err:  # every tracer raises its own types; we report and fall back
            notes.append(f"{method} failed: {_short_error(err)}")
            continue
        if index > 0 and method == "make_fx":
            notes.append(
                "make_fx traced with real tensors: Python control flow follows the path taken for these example inputs"
            )
        return method, piece
    return None


def _capture_pieces(
    module: nn.Module, workload: Workload, notes: list[str], prefix: str, depth: int
) -> list[GraphPiece]:
    """Capture each child module on the inputs it receives in an eager run."""
    calls: dict[str, tuple[nn.Module, tuple[Any, ...], dict[str, Any]]] = {}
    handles = []
    for name, child in module.named_children():

        def record(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], name: str = name) -> None:
            calls.setdefault(name, (mod, args, kwargs))

        handles.append(child.register_forward_pre_hook(record, with_kwargs=True))
    try:
        workload.fn(*workload.args, **workload.kwargs)
    finally:
        for handle in handles:
            handle.remove()
    pieces: list[GraphPiece] = []
    for name, (child, args, kwargs) in calls.items():
        path = f"{prefix}{name}"
        child_workload = Workload(child, args, kwargs)
        child_notes: list[str] = []
        result = _capture_whole(child_workload, child_notes)
        if result is not None:
            piece = result[1]
            piece.name = path
            pieces.append(piece)
            notes.append(f"piece {path}: captured with {result[0]}")
            continue
        notes.extend(f"piece {path}: {note}" for note in child_notes)
        if depth + 1 < _MAX_PIECEWISE_DEPTH:
            pieces.extend(_capture_pieces(child, child_workload, notes, f"{path}.", depth + 1))
    return pieces


def workload_device(workload: Workload) -> str:
    """The CUDA device the workload uses, if any, else ``cpu``."""
    leaves, _ = tree_flatten((workload.args, dict(workload.kwargs)))
    tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
    if isinstance(workload.fn, nn.Module):
        tensors.extend(workload.fn.parameters())
    devices = {str(t.device) for t in tensors}
    cuda = sorted(d for d in devices if d.startswith("cuda"))
    return cuda[0] if cuda else "cpu"


# --- annotation: one real run fills every node's shapes, aliasing and source -------------


def op_name(node: torch.fx.Node, module: torch.fx.GraphModule) -> str:
    target = node.target
    if node.op == "call_module":
        return f"module:{type(module.get_submodule(str(target))).__name__}"
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    if target is operator.getitem:
        return "getitem"
    name = getattr(target, "__name__", str(target))
    owner = getattr(target, "__module__", None) or ""
    return f"{owner}.{name}" if owner else name


def is_profiled(node: torch.fx.Node) -> bool:
    """Operator nodes; placeholders, attributes, outputs and export's guard check are not operators."""
    if node.op == "call_module":
        return str(node.target) != "_guards_fn"
    return node.op == "call_function"


def _module_info(node: torch.fx.Node, prefix: str) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, module_type = list(stack.values())[-1]
        path = str(path)
        for wrapper in (f"{_WRAPPER_PREFIX}.", "L__self__.", "L['self']."):
            path = path.removeprefix(wrapper)
        if path == _WRAPPER_PREFIX or path.endswith(_FlatOutput.__name__):
            path = ""
        module_type = module_type if isinstance(module_type, str) else getattr(module_type, "__name__", "")
        module_type = module_type.rsplit(".", 1)[-1]
        if module_type == _FlatOutput.__name__:
            module_type = ""
        return _join_path(prefix, path), module_type
    if node.op == "call_module":
        return prefix + str(node.target), ""
    return prefix.rstrip("."), ""


def _join_path(prefix: str, path: str) -> str:
    return prefix + path if path else prefix.rstrip(".")


def _scalar_repr(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "T"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_scalar_repr(v) for v in value) + "]"
    if isinstance(value, torch.fx.Node):
        return "N"
    return repr(value)


def _is_mutating(node: torch.fx.Node) -> bool:
    target = node.target
    return isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable


def _storage_ptrs(tensors: list[torch.Tensor]) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors if t.layout == torch.strided and t.numel() > 0}


def _zero_cost_reason(
    node: torch.fx.Node, in_tensors: list[torch.Tensor], out_tensors: list[torch.Tensor], mutates: bool
) -> str | None:
    if node.target is operator.getitem:
        return "tuple indexing"
    if not out_tensors:
        return "returns no tensor (metadata or assertion)"
    if mutates:
        return None
    if all(t.numel() == 0 for t in out_tensors):
        return "empty output"
    if _storage_ptrs(out_tensors) <= _storage_ptrs(in_tensors):
        return "view: output aliases an input"
    return None


class _Annotator(torch.fx.Interpreter):
    def __init__(self, piece: GraphPiece, index: int, graph: OpGraph) -> None:
        super().__init__(piece.module)
        self.piece, self.index, self.op_graph = piece, index, graph
        self.prefix = "" if piece.name == "main" else f"{piece.name}."

    def run_node(self, node: torch.fx.Node) -> Any:
        if not is_profiled(node):
            return super().run_node(node)
        args, kwargs = self.fetch_args_kwargs_from_env(node)
        result = super().run_node(node)
        in_tensors = tensor_leaves((list(args), kwargs))
        out_tensors = tensor_leaves(result)
        module_path, module_type = _module_info(node, self.prefix)
        if node.op == "call_module" and not module_type:
            module_type = type(self.piece.module.get_submodule(str(node.target))).__name__
        mutates = _is_mutating(node)
        source = innermost_user_frame(node.meta.get("stack_trace"))
        self.op_graph.nodes.append(
            OpNode(
                id=node.name if self.piece.name == "main" else f"{self.piece.name}/{node.name}",
                op=op_name(node, self.piece.module),
                piece=self.index,
                fx_name=node.name,
                module_path=module_path,
                module_type=module_type,
                source=source,
                inputs=[TensorMeta.of(t) for t in in_tensors],
                outputs=[TensorMeta.of(t) for t in out_tensors],
                scalar_args=_scalar_repr(node.args) + _scalar_repr(sorted(node.kwargs.items())),
                mutates=mutates,
                zero_cost_reason=_zero_cost_reason(node, in_tensors, out_tensors, mutates),
            )
        )
        return result


def run_piece(interpreter: torch.fx.Interpreter, piece: GraphPiece) -> Any:
    return interpreter.run(*piece.flat_inputs, enable_io_processing=piece.io_processing)


def annotate(graph: OpGraph) -> None:
    """Run every piece once on its real inputs, recording each operator's tensors and source."""
    graph.nodes.clear()
    for index, piece in enumerate(graph.pieces):
        run_piece(_Annotator(piece, index, graph), piece)
    if not any(node.source for node in graph.nodes):
        graph.notes.append("no operator has a source location (the capture method recorded no stack traces)")


__all__ = ["InputSnapshot", "annotate", "capture", "is_profiled", "run_piece", "tensor_leaves", "workload_device"]
