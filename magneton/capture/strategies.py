"""Capturing a workload's operator graph with torch.fx.

Order of preference: torch.export (non-strict, ATen level, stack traces and
module stacks), then make_fx (real tensors: data-dependent Python control flow
is specialised to the example inputs), then torch.fx.symbolic_trace (module
level). A program none of these can capture whole is captured piecewise: each
child module separately, the glue between them left unmeasured (and visible as
missing coverage). The method used and every failure on the way are reported.

Each graph is checked against one eager call (magneton.capture.fidelity): a graph
that runs operators eager does not (library code that takes a tracing-only path,
as transformers does under torch.export) is set aside for the next method that
matches eager, first make_fx in pre-dispatch mode (real tensors, so Python follows
eager's path, with export's operators), and the report's capture notes say why.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from magneton.capture.annotate import ValueObserver, annotate, run_piece
from magneton.capture.fidelity import DispatchProfile, Divergence, compare, record_call
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


def _capture_make_fx(workload: Workload, pre_dispatch: bool = False) -> GraphPiece:
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
            pre_dispatch=pre_dispatch,
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


def _capture_make_fx_pre_dispatch(workload: Workload) -> GraphPiece:
    return _capture_make_fx(workload, pre_dispatch=True)


PRE_DISPATCH_MAKE_FX = "make_fx (pre-dispatch)"

CAPTURE_METHODS: tuple[tuple[str, Callable[[Workload], GraphPiece]], ...] = (
    ("torch.export", _capture_export),
    # Only tried when an earlier graph did not do what eager does (see _capture_whole): it runs the program on
    # real tensors, as make_fx does, but keeps export's operators (linear, scaled_dot_product_attention).
    (PRE_DISPATCH_MAKE_FX, _capture_make_fx_pre_dispatch),
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


def _capture_whole(
    workload: Workload, notes: list[str], fidelity_notes: list[str] | None = None
) -> tuple[str, GraphPiece] | None:
    """The first capture method whose graph does the work eager does; else the first that captures at all.

    Failures go to ``notes``; why a graph was set aside (or kept though it differs) to ``fidelity_notes``
    (default: ``notes``), which a piecewise capture keeps even when the piece was captured.
    """
    fidelity_notes = notes if fidelity_notes is None else fidelity_notes
    check = FidelityCheck(workload)
    fallback: tuple[str, GraphPiece, Divergence] | None = None
    for index, (method, capture_fn) in enumerate(CAPTURE_METHODS):
        if method == PRE_DISPATCH_MAKE_FX and fallback is None:
            continue
        check.before_capture()
        try:
            with _quiet_tracers():
                piece = capture_fn(workload)
        except Exception as err:  # every tracer raises its own types; we report and fall back
            notes.append(f"{method} failed: {_short_error(err)}")
            continue
        divergence = check.divergence(method, piece, notes)
        if divergence is not None and fallback is None:
            fallback = (method, piece, divergence)
        if divergence is not None:
            continue
        if fallback is not None:
            fidelity_notes.append(_fallback_note(fallback[0], fallback[2], method))
        elif index > 0 and method == "make_fx":
            notes.append(
                "make_fx traced with real tensors: Python control flow follows the path taken for these example inputs"
            )
        return method, piece
    if fallback is None:
        return None
    method, piece, divergence = fallback
    fidelity_notes.append(
        f"{method}'s graph {divergence.describe()} for these inputs, and no other capture method follows eager "
        f"either: the {method} graph is analysed, so findings on the operators eager does not run do not apply "
        "to the eager program"
    )
    return method, piece


def _fallback_note(method: str, divergence: Divergence, used: str) -> str:
    return (
        f"{method}'s graph {divergence.describe()} for these inputs: the program takes another path under "
        f"{method}'s tracing (library code that checks torch.compiler.is_compiling() or sees a traced tensor, as "
        f"transformers does when it builds masks); captured with {used} instead, which follows what eager runs "
        "for these inputs"
    )


class FidelityCheck:
    """Compares each captured graph's run with one eager call of the workload, at the ATen dispatch level.

    The eager call is recorded once, lazily. The random-number state is put back before each capture, so a
    tracer that runs the program on real tensors (make_fx) takes the path the recorded eager call took. The
    workload's inputs are restored after every run (programs that write into their inputs).
    """

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.inputs = InputSnapshot((workload.args, dict(workload.kwargs)))
        self.rng = _RngState.save(workload_device(workload))
        self.eager: DispatchProfile | None = None
        self.failed = False

    def before_capture(self) -> None:
        self.inputs.restore()
        self.rng.restore()

    def divergence(self, method: str, piece: GraphPiece, notes: list[str]) -> Divergence | None:
        """How ``piece`` differs materially from eager, or None where it does not (or cannot be checked)."""
        if self.failed:
            return None
        self.inputs.restore()  # a tracer that runs the program (make_fx) may have written into them
        try:
            if self.eager is None:
                self.rng.restore()
                self.eager = record_call(lambda: self.workload.fn(*self.workload.args, **self.workload.kwargs))
                self.inputs.restore()
                self.rng.restore()
            graph = record_call(lambda: run_piece(torch.fx.Interpreter(piece.module), piece))
        except Exception as err:  # a check that cannot run must not cost the capture
            self.failed = True
            notes.append(f"could not compare {method}'s graph with eager: {_short_error(err)}")
            return None
        finally:
            self.inputs.restore()
        found = compare(self.eager, graph)
        return found if found.is_material() else None


class _RngState:
    """The CPU generator's state and the workload's CUDA device's, to run the program twice on the same draws."""

    def __init__(self, cpu: torch.Tensor, device: str, cuda: torch.Tensor | None) -> None:
        self.cpu, self.device, self.cuda = cpu, device, cuda

    @classmethod
    def save(cls, device: str) -> _RngState:
        cuda = torch.cuda.get_rng_state(device) if device.startswith("cuda") else None
        return cls(torch.get_rng_state(), device, cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


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
        fidelity_notes: list[str] = []
        result = _capture_whole(child_workload, child_notes, fidelity_notes)
        if result is not None:
            piece = result[1]
            piece.name = path
            pieces.append(piece)
            notes.append(f"piece {path}: captured with {result[0]}")
            notes.extend(f"piece {path}: {note}" for note in fidelity_notes)
            continue
        notes.extend(f"piece {path}: {note}" for note in fidelity_notes)
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
