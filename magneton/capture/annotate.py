"""Annotating a captured graph: one real run fills every node's op, shapes, aliasing and source."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch

from magneton.capture.cost import FlopCounter, set_cost
from magneton.capture.source import innermost_user_frame
from magneton.capture.torch_compat import (
    EXPORT_GUARDS_MODULE,
    ROOT_CALL_KEY,
    ROOT_MODULE_PREFIXES,
    is_op_overload,
    mutates_arguments,
)
from magneton.capture.values import tensor_leaves
from magneton.capture.wrapper import WRAPPER_PREFIX, FlatOutput
from magneton.graph import GraphPiece, OpGraph, OpNode, TensorMeta


def op_name(node: torch.fx.Node, module: torch.fx.GraphModule) -> str:
    target = node.target
    if node.op == "call_module":
        return f"module:{type(module.get_submodule(str(target))).__name__}"
    if is_op_overload(target):
        return str(target)
    if target is operator.getitem:
        return "getitem"
    name = getattr(target, "__name__", str(target))
    owner = getattr(target, "__module__", None) or ""
    return f"{owner}.{name}" if owner else name


def is_profiled(node: torch.fx.Node) -> bool:
    """Operator nodes; placeholders, attributes, outputs and export's guard check are not operators."""
    if node.op == "call_module":
        return str(node.target) != EXPORT_GUARDS_MODULE
    return node.op == "call_function"


def strip_compile_wrapper(path: str) -> str:
    """``block._orig_mod.lin`` -> ``block.lin``: torch.compile's wrapper is not part of the user's model."""
    return ".".join(part for part in path.split(".") if part != "_orig_mod")


def root_call(node: torch.fx.Node) -> int | None:
    """Which call of the root module produced ``node`` (1-based), when the capture recorded it."""
    for key in node.meta.get("nn_module_stack") or {}:
        if str(key).startswith(ROOT_CALL_KEY):
            return int(str(key).removeprefix(ROOT_CALL_KEY))
    return None


def _module_info(node: torch.fx.Node, prefix: str) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, module_type = list(stack.values())[-1]
        path = str(path)
        for wrapper in (f"{WRAPPER_PREFIX}.", *ROOT_MODULE_PREFIXES):
            path = path.removeprefix(wrapper)
        if path == WRAPPER_PREFIX or path.endswith(FlatOutput.__name__):
            path = ""
        path = strip_compile_wrapper(path)
        module_type = module_type if isinstance(module_type, str) else getattr(module_type, "__name__", "")
        module_type = module_type.rsplit(".", 1)[-1]
        if module_type == FlatOutput.__name__:
            module_type = ""
        return _join_path(prefix, path), module_type
    if node.op == "call_module":
        return strip_compile_wrapper(prefix + str(node.target)), ""
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
    return mutates_arguments(node.target)


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


# Called once per operator with its node and real output during the annotation run (value fingerprints).
ValueObserver = Callable[[OpNode, Any], None]


class _Annotator(torch.fx.Interpreter):
    def __init__(self, piece: GraphPiece, index: int, graph: OpGraph, observer: ValueObserver | None = None) -> None:
        super().__init__(piece.module)
        self.piece, self.index, self.op_graph, self.observer = piece, index, graph, observer
        self.prefix = "" if piece.name == "main" else f"{piece.name}."

    def run_node(self, node: torch.fx.Node) -> Any:
        if not is_profiled(node):
            return super().run_node(node)
        args, kwargs = self.fetch_args_kwargs_from_env(node)
        with FlopCounter() as counted:
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
                call=root_call(node),
            )
        )
        if self.observer is not None:
            self.observer(self.op_graph.nodes[-1], result)
        set_cost(self.op_graph.nodes[-1], counted.flops)
        return result


def run_piece(interpreter: torch.fx.Interpreter, piece: GraphPiece) -> Any:
    # Every capture method leaves placeholders that take the flat input leaves, never the original pytree.
    return interpreter.run(*piece.flat_inputs, enable_io_processing=False)


def annotate(graph: OpGraph, observer: ValueObserver | None = None) -> None:
    """Run every piece once on its real inputs, recording each operator's tensors and source.

    ``observer`` sees every operator's real output on the way (the diff's value fingerprints).
    """
    graph.nodes.clear()
    for index, piece in enumerate(graph.pieces):
        run_piece(_Annotator(piece, index, graph, observer), piece)
    if not any(node.source for node in graph.nodes):
        graph.notes.append("no operator has a source location (the capture method recorded no stack traces)")
    graph.notes.extend(frozen_constant_notes(graph))


def frozen_constant_notes(graph: OpGraph) -> list[str]:
    """Tensors the tracer froze into constants: values computed outside torch (numpy glue, Python lists).

    make_fx runs such code once while tracing and stores its result; the graph then neither measures
    that work nor recomputes the value for other inputs.
    """
    lines: dict[str, int] = {}
    for piece in graph.pieces:
        for node in piece.module.graph.nodes:
            if node.op == "get_attr" and str(node.target).startswith("_tensor_constant"):
                source = innermost_user_frame(node.meta.get("stack_trace"))
                where = f"{source.file}:{source.line}" if source else "an unknown line"
                lines[where] = lines.get(where, 0) + 1
    return [
        f"{count} value{'s' if count > 1 else ''} computed outside torch at {where} (numpy or Python glue) "
        f"{'were' if count > 1 else 'was'} frozen into a constant by {graph.method}: that work is not measured "
        "and the value will not follow other inputs"
        for where, count in lines.items()
    ]


__all__ = ["ValueObserver", "annotate", "is_profiled", "op_name", "run_piece"]
