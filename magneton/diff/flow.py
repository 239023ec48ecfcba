"""The dataflow view of a captured program that matching works on.

An ``OpGraph`` lists operators; matching needs the edges between them: which
operator's output each operator reads. Values that depend on no program input
(parameters, buffers, constants, and everything computed from them alone, such
as an ``arange``-built causal mask) are *constant*: they are matched among
themselves but never become cut points of the program proper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magneton.capture.annotate import is_profiled
from magneton.diff.fingerprint import Fingerprint
from magneton.graph import OpGraph, OpNode


@dataclass
class Flow:
    """Operators in program order (a topological order) with their producer/consumer edges."""

    nodes: list[OpNode]
    preds: list[tuple[int, ...]]  # indices of operators whose outputs this one reads
    succs: list[tuple[int, ...]]  # indices of operators reading this one's output
    to_output: list[bool]  # the output is (part of) the program's result
    constant: list[bool]  # depends on no program input
    fingerprints: list[Fingerprint | None]
    index: dict[str, int] = field(default_factory=dict)  # node id -> position

    def __len__(self) -> int:
        return len(self.nodes)


def build_flow(graph: OpGraph, fingerprints: dict[str, Fingerprint | None]) -> Flow:
    """Edges from the fx graphs of ``graph``'s pieces; each piece's placeholders are program inputs."""
    nodes = list(graph.nodes)
    index = {node.id: i for i, node in enumerate(nodes)}
    preds: list[tuple[int, ...]] = [() for _ in nodes]
    reads_input = [False] * len(nodes)
    to_output = [False] * len(nodes)
    for piece_index, piece in enumerate(graph.pieces):
        by_name = {node.fx_name: i for i, node in enumerate(nodes) if node.piece == piece_index}
        for fx_node in piece.module.graph.nodes:
            if fx_node.op == "output":
                for arg in fx_node.all_input_nodes:
                    if arg.name in by_name:
                        to_output[by_name[arg.name]] = True
                continue
            if not is_profiled(fx_node) or fx_node.name not in by_name:
                continue
            i = by_name[fx_node.name]
            ops = []
            for arg in fx_node.all_input_nodes:
                if arg.op == "placeholder":
                    reads_input[i] = True
                elif arg.name in by_name:
                    ops.append(by_name[arg.name])
            preds[i] = tuple(dict.fromkeys(ops))
    succ_lists: list[list[int]] = [[] for _ in nodes]
    constant = [True] * len(nodes)
    for i, ps in enumerate(preds):
        for p in ps:
            succ_lists[p].append(i)
        constant[i] = not reads_input[i] and all(constant[p] for p in ps)
    return Flow(
        nodes=nodes,
        preds=preds,
        succs=[tuple(s) for s in succ_lists],
        to_output=to_output,
        constant=constant,
        fingerprints=[fingerprints.get(node.id) for node in nodes],
        index=index,
    )


__all__ = ["Flow", "build_flow"]
