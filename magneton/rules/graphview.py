"""A read-only view of an ``OpGraph`` for graph rules: who produces and who consumes each operator's tensors.

``OpNode`` keeps metadata (op, shapes, strides, source); the edges live in the fx
graphs of the captured pieces, so the view maps fx nodes back to ``OpNode`` ids once.
Views (``transpose``, ``view``, ``expand``, ...) are real nodes here; ``through_views``
walks past them when a pattern is about the data, not its layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from magneton.graph import OpGraph, OpNode

VIEW_OPS = frozenset(
    {
        "view",
        "reshape",
        "_unsafe_view",
        "transpose",
        "t",
        "permute",
        "unsqueeze",
        "squeeze",
        "expand",
        "slice",
        "select",
        "alias",
        "detach",
        "numpy_T",
        "contiguous",
    }
)


def op_base(op: str) -> str:
    """``aten._softmax.default`` -> ``softmax``; ``aten.mul.Tensor`` -> ``mul``; ``aten.add_.Tensor`` -> ``add``."""
    if op.startswith(("aten.", "prims.")):
        parts = op.split(".")
        text = parts[1] if len(parts) > 1 else op
    else:  # fx fallbacks: torch.nn.functional.softmax, torch.matmul, module:Linear
        text = op.rsplit(".", 1)[-1]
    return text.strip("_") or text


class GraphView:
    def __init__(self, graph: OpGraph) -> None:
        self.graph = graph
        self.nodes = graph.nodes
        self._by_id = {node.id: node for node in graph.nodes}
        self._inputs: dict[str, list[str | None]] = {}
        self._users: dict[str, list[str]] = {node.id: [] for node in graph.nodes}
        self._fx: dict[str, Any] = {}
        self._build()

    def _build(self) -> None:
        by_fx: dict[tuple[int, str], str] = {(node.piece, node.fx_name): node.id for node in self.nodes}
        for piece_index, piece in enumerate(self.graph.pieces):
            for fx_node in piece.module.graph.nodes:
                node_id = by_fx.get((piece_index, fx_node.name))
                if node_id is None:
                    continue
                self._fx[node_id] = fx_node
                producers: list[str | None] = []
                for arg in fx_node.all_input_nodes:
                    producer = by_fx.get((piece_index, arg.name))
                    producers.append(producer)
                    if producer is not None:
                        self._users[producer].append(node_id)
                self._inputs[node_id] = producers

    def node(self, node_id: str) -> OpNode:
        return self._by_id[node_id]

    def base(self, node: OpNode) -> str:
        return op_base(node.op)

    def producers(self, node: OpNode) -> list[OpNode]:
        return [self._by_id[p] for p in self._inputs.get(node.id, []) if p is not None]

    def consumers(self, node: OpNode) -> list[OpNode]:
        """Operators reading the node's output (assertions and other output-less nodes left out)."""
        users = (self._by_id[c] for c in dict.fromkeys(self._users.get(node.id, [])))
        return [user for user in users if user.outputs]

    def is_output(self, node: OpNode) -> bool:
        """The node's value leaves the graph (it is returned)."""
        fx_node = self._fx.get(node.id)
        return fx_node is not None and any(user.op == "output" for user in fx_node.users)

    def is_view(self, node: OpNode) -> bool:
        """A layout-only step that copied nothing (a reshape that had to copy is not a view)."""
        return op_base(node.op) in VIEW_OPS and node.zero_cost

    def fx_node(self, node: OpNode) -> Any:
        return self._fx.get(node.id)

    def stack_trace(self, node: OpNode) -> str | None:
        fx_node = self._fx.get(node.id)
        return fx_node.meta.get("stack_trace") if fx_node is not None else None

    def of_base(self, *bases: str) -> Iterator[OpNode]:
        for node in self.nodes:
            if op_base(node.op) in bases:
                yield node

    def through_views(self, node: OpNode, upstream: bool = True) -> list[OpNode]:
        """The nearest non-view producers (upstream) or consumers (downstream) of ``node``."""
        found: list[OpNode] = []
        frontier = self.producers(node) if upstream else self.consumers(node)
        seen: set[str] = set()
        while frontier:
            current = frontier.pop()
            if current.id in seen:
                continue
            seen.add(current.id)
            if self.is_view(current):
                frontier.extend(self.producers(current) if upstream else self.consumers(current))
            else:
                found.append(current)
        return found

    def upstream(self, node: OpNode, depth: int) -> list[OpNode]:
        """Producers up to ``depth`` compute steps away (views do not count as steps)."""
        return self._walk(node, depth, upstream=True)

    def downstream(self, node: OpNode, depth: int) -> list[OpNode]:
        return self._walk(node, depth, upstream=False)

    def _walk(self, node: OpNode, depth: int, upstream: bool) -> list[OpNode]:
        found: dict[str, OpNode] = {}
        frontier = [node]
        for _ in range(depth):
            following: list[OpNode] = []
            for current in frontier:
                for neighbour in self.through_views(current, upstream):
                    if neighbour.id not in found and neighbour.id != node.id:
                        found[neighbour.id] = neighbour
                        following.append(neighbour)
            frontier = following
        return list(found.values())

    def scalars(self, node: OpNode) -> list[float]:
        """Numeric constants among the node's arguments (``mul(x, 0.044715)`` -> [0.044715])."""
        fx_node = self._fx.get(node.id)
        if fx_node is None:
            return []
        values: list[float] = []
        for arg in list(fx_node.args) + list(fx_node.kwargs.values()):
            if isinstance(arg, (int, float)) and not isinstance(arg, bool):
                values.append(float(arg))
        return values

    def arg(self, node: OpNode, index: int, default: Any = None) -> Any:
        fx_node = self._fx.get(node.id)
        if fx_node is None or index >= len(fx_node.args):
            return default
        return fx_node.args[index]

    def numel(self, node: OpNode) -> int:
        total = 0
        for meta in node.outputs:
            count = 1
            for size in meta.shape:
                count *= size
            total += count
        return total


__all__ = ["VIEW_OPS", "GraphView", "op_base"]
