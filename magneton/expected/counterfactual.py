"""Counterfactual replays: what a badly laid-out operator costs on well-laid-out copies of its inputs.

A regression with ~15% error cannot see a 20-30% layout penalty reliably, but
the alternative can be measured directly: replay the same operator, with the
same arguments, once on its inputs as the program laid them out and once on
contiguous (default memory format, broadcast materialised) copies made *outside*
the measurement window. Trials alternate between the two so drift affects both
alike. Both numbers come from the active backend, so the ideal-layout energy
carries the backend's provenance (measured or estimated), never "predicted".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

import torch

from magneton.capture import InputSnapshot, is_profiled, run_piece
from magneton.capture.torch_compat import tree_map
from magneton.expected.features import is_badly_laid_out, is_expanded, op_family
from magneton.graph import GraphPiece, OpGraph, OpNode, TensorMeta
from magneton.measure.backends.base import EnergyBackend
from magneton.measure.energy_pass import _Timer, operand_copies
from magneton.measure.options import PassOptions
from magneton.measure.stats import summarize
from magneton.workload import Workload

ORIGINAL_SUFFIX = "|as-laid-out"
IDEAL_SUFFIX = "|ideal-layout"


@dataclass(frozen=True)
class Counterfactual:
    """Per-call energy of one node replayed as laid out and on well-laid-out copies."""

    node_id: str
    original_j: float
    ideal_j: float
    original_time_s: float
    ideal_time_s: float
    bad_inputs: tuple[int, ...]  # positions (among the node's tensor inputs) that were re-laid-out
    trials: int
    paired_gaps: tuple[float, ...] = ()  # each trial's saving: its ideal window against its as-laid-out one

    @property
    def gap(self) -> float:
        """Fraction of the as-laid-out energy that good layout saves (negative: the copy would cost more)."""
        return (self.original_j - self.ideal_j) / self.original_j if self.original_j > 0 else 0.0

    @property
    def consistent(self) -> bool:
        """Every trial saw the saving: a gap that one noisy window made (a median of 3 can) is no evidence."""
        return all(g > 0 for g in self.paired_gaps)

    def to_json(self) -> dict[str, Any]:
        return {
            "original_j": self.original_j,
            "ideal_j": self.ideal_j,
            "gap": self.gap,
            "paired_gaps": list(self.paired_gaps),
            "bad_inputs": list(self.bad_inputs),
            "trials": self.trials,
        }


def bad_input_positions(node: OpNode) -> tuple[int, ...]:
    """Inputs a contiguous copy would serve better. Attention kernels read q, k and v through their batch, head
    and sequence strides as long as each row (the head dimension) is contiguous: the (batch, seq, heads, dim)
    projection viewed as (batch, heads, seq, dim), which every transformer hands them, is their native layout,
    and copying it contiguous costs more than the replay would save (it does not charge the copy)."""
    attention = op_family(node.op, len(node.inputs)) == "attention"
    return tuple(
        i
        for i, meta in enumerate(node.inputs)
        if is_badly_laid_out(meta) and not (attention and _rows_contiguous(meta))
    )


def _rows_contiguous(meta: TensorMeta) -> bool:
    return bool(meta.stride) and meta.stride[-1] == 1 and not is_expanded(meta)


def needs_counterfactual(node: OpNode) -> bool:
    """Operators (not views, not in-place) that read at least one badly laid-out input."""
    return not node.zero_cost and not node.mutates and bool(bad_input_positions(node))


def well_laid_out(value: Any) -> Any:
    """Contiguous, default-memory-format copies of every tensor that is not already laid out well."""

    def fix(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.layout == torch.strided and not v.is_contiguous():
            return v.contiguous()
        return v

    return tree_map(fix, value)


class _CounterfactualInterpreter(torch.fx.Interpreter):
    def __init__(
        self,
        piece: GraphPiece,
        targets: dict[str, OpNode],
        timer: _Timer,
        options: PassOptions,
        device: str,
        trials: int,
        results: dict[str, Counterfactual],
    ) -> None:
        super().__init__(piece.module)
        self.targets, self.timer, self.options, self.device = targets, timer, options, device
        self.trials, self.results = trials, results

    def run_node(self, fx_node: torch.fx.Node) -> Any:
        op_node = self.targets.get(fx_node.name) if is_profiled(fx_node) else None
        if op_node is None:
            return super().run_node(fx_node)
        args, kwargs = self.fetch_args_kwargs_from_env(fx_node)
        operator: Any = (
            self.module.get_submodule(str(fx_node.target)) if fx_node.op == "call_module" else fx_node.target
        )
        # Both operand sets, with their rotation copies, are made here: outside every window.
        original = operand_copies(args, kwargs, self.options, self.device)
        ideal_args, ideal_kwargs = well_laid_out((args, kwargs))
        ideal = operand_copies(ideal_args, ideal_kwargs, self.options, self.device)

        def runner(copies: list[tuple[Any, Any]]) -> Any:
            def call_each_copy() -> None:
                for copy_args, copy_kwargs in copies:
                    operator(*copy_args, **copy_kwargs)

            return call_each_copy

        samples: dict[str, list[tuple[float, float]]] = {ORIGINAL_SUFFIX: [], IDEAL_SUFFIX: []}
        for trial in range(self.trials):
            order = [(ORIGINAL_SUFFIX, original), (IDEAL_SUFFIX, ideal)]
            for suffix, copies in order if trial % 2 == 0 else order[::-1]:
                sample = self.timer.measure(
                    op_node.signature + suffix,
                    runner(copies),
                    calls_per_run=len(copies),
                    cuda_graph=self.device.startswith("cuda"),
                    op=operator,
                )
                samples[suffix].append((sample.energy_j, sample.time_s))
        orig, best = samples[ORIGINAL_SUFFIX], samples[IDEAL_SUFFIX]
        self.results[op_node.id] = Counterfactual(
            node_id=op_node.id,
            original_j=summarize([e for e, _ in orig]).median,
            ideal_j=summarize([e for e, _ in best]).median,
            original_time_s=summarize([t for _, t in orig]).median,
            ideal_time_s=summarize([t for _, t in best]).median,
            bad_inputs=bad_input_positions(op_node),
            trials=self.trials,
            paired_gaps=tuple((o - i) / o if o > 0 else 0.0 for (o, _), (i, _) in zip(orig, best, strict=True)),
        )
        del original, ideal
        return super().run_node(fx_node)


def counterfactual_replays(
    graph: OpGraph,
    workload: Workload,
    backend: EnergyBackend,
    node_ids: Collection[str],
    options: PassOptions | None = None,
    trials: int = 3,
) -> dict[str, Counterfactual]:
    """Replay each named node (one per signature) as laid out and well laid out; one run of the program."""
    options = options or PassOptions()
    wanted = set(node_ids)
    by_piece: list[dict[str, OpNode]] = [{} for _ in graph.pieces]
    seen: dict[str, OpNode] = {}
    for node in graph.nodes:
        if node.id in wanted and needs_counterfactual(node) and node.signature not in seen:
            seen[node.signature] = node
            by_piece[node.piece][node.fx_name] = node
    if not seen:
        return {}
    min_window_s = options.min_window_s if options.min_window_s is not None else backend.info().min_window_s
    timer = _Timer(backend, options, min_window_s)
    results: dict[str, Counterfactual] = {}
    snapshot = (
        InputSnapshot([workload.args, dict(workload.kwargs)] + [piece.flat_inputs for piece in graph.pieces])
        if graph.mutates_inputs
        else None
    )
    with torch.no_grad():
        for piece, targets in zip(graph.pieces, by_piece, strict=True):
            interpreter = _CounterfactualInterpreter(piece, targets, timer, options, graph.device, trials, results)
            run_piece(interpreter, piece)
            del interpreter
    if snapshot is not None:
        snapshot.restore()
    # Nodes sharing a signature share the replay, as they share the energy pass's measurement.
    by_signature = {
        seen_node.signature: results[seen_node.id] for seen_node in seen.values() if seen_node.id in results
    }
    shared: dict[str, Counterfactual] = {}
    for node in graph.nodes:
        if node.id in wanted and node.signature in by_signature:
            found = by_signature[node.signature]
            shared[node.id] = replace(found, node_id=node.id)
    return shared


__all__ = ["Counterfactual", "bad_input_positions", "counterfactual_replays", "needs_counterfactual", "well_laid_out"]
