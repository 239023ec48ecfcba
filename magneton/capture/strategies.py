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
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from magneton.capture.annotate import ValueObserver, annotate
from magneton.capture.torch_compat import (
    full_export_stack_traces,
    make_fx_data_dependent_ok,
    module_stack_from_hooks,
    tree_flatten,
)
from magneton.capture.values import InputSnapshot
from magneton.capture.wrapper import FlatOutput
from magneton.errors import CaptureError
from magneton.graph import GraphPiece, OpGraph
from magneton.workload import Workload

_MAX_PIECEWISE_DEPTH = 3


def _short_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first[:300]}"


def _capture_export(workload: Workload) -> GraphPiece:
    with full_export_stack_traces():
        program = torch.export.export(FlatOutput(workload.fn), workload.args, dict(workload.kwargs), strict=False)
    flat, _ = tree_flatten((workload.args, dict(workload.kwargs)))
    return GraphPiece("main", program.module(), flat)


def _capture_make_fx(workload: Workload) -> GraphPiece:
    from torch.fx.experimental.proxy_tensor import make_fx

    flat, spec = tree_flatten((workload.args, dict(workload.kwargs)))
    tensor_positions = [i for i, leaf in enumerate(flat) if isinstance(leaf, torch.Tensor)]
    wrapper = FlatOutput(workload.fn)

    def run_flat(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves = list(flat)
        for position, tensor in zip(tensor_positions, tensors, strict=True):
            leaves[position] = tensor
        args, kwargs = spec.unflatten(leaves)
        return wrapper(*args, **kwargs)

    with module_stack_from_hooks(workload.fn), full_export_stack_traces():
        module = make_fx(
            run_flat,
            tracing_mode="real",
            record_module_stack=True,
            record_stack_traces=True,
            **make_fx_data_dependent_ok(),
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


def capture(workload: Workload, observer: ValueObserver | None = None) -> OpGraph:
    """Capture ``workload`` whole if any method can, else piecewise; raise CaptureError if nothing works.

    ``observer`` is handed every operator's real output during the annotation run.
    """
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
        annotate(graph, observer)
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


__all__ = ["capture", "workload_device"]
