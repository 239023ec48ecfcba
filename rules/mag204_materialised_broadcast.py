from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

_COPIES = ("reshape", "contiguous", "clone", "unsafe_view", "copy")
_CONSUMERS = ("scaled_dot_product_attention", "matmul", "bmm", "baddbmm", "einsum")


class MaterialisedBroadcast(Rule):
    """A broadcast (``expand``) or ``repeat_interleave`` copied into memory right before attention or a matmul.

    This is grouped-query attention's ``repeat_kv``: K and V heads are copied
    ``n_rep`` times so that the shapes match, although SDPA's ``enable_gqa=True``
    and matmul's broadcasting read the shared heads directly. Found in the graph,
    so it fires inside libraries too (transformers' ``repeat_kv``). Megatron-LM
    issue 543 (a redundant ``repeat_interleave``) cost 6.7% energy in the
    Magneton study.

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html,
    https://github.com/NVIDIA/Megatron-LM/issues/543, arXiv 2512.08365.
    """

    id = "MAG204"
    name = "materialised-broadcast"
    category = "Redundant computation"
    message = "a broadcast is copied into memory before attention/matmul, which could read it shared"
    suggestion = "scaled_dot_product_attention(q, k, v, enable_gqa=True), or let matmul broadcast"
    VALID = (
        Valid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef f(q, k):\n"
            "    return F.scaled_dot_product_attention(q, k, k, enable_gqa=True)\n\n\n"
            "def workload():\n    return f, (torch.randn(1, 4, 8, 16), torch.randn(1, 2, 8, 16))\n"
        ),
        Valid(
            "import torch\n\n\ndef f(x):\n    return x.expand(4, 8, 8).contiguous().sum()\n\n\n"
            "def workload():\n    return f, (torch.randn(1, 8, 8),)\n",
            why="no attention or matmul reads it",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef f(q, k):\n"
            "    k = k.repeat_interleave(2, dim=1)\n    return F.scaled_dot_product_attention(q, k, k)\n\n\n"
            "def workload():\n    return f, (torch.randn(1, 4, 8, 16), torch.randn(1, 2, 8, 16))\n"
        ),
        Invalid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef f(q, k):\n"
            "    k = k[:, :, None].expand(1, 2, 2, 8, 16).reshape(1, 4, 8, 16)\n"
            "    return F.scaled_dot_product_attention(q, k, k)\n\n\n"
            "def workload():\n    return f, (torch.randn(1, 4, 8, 16), torch.randn(1, 2, 8, 16))\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        for node in view.nodes:
            base = view.base(node)
            copies = base in _COPIES and not node.zero_cost and self._from_expand(view, node)
            if base not in ("repeat_interleave", "repeat") and not copies:
                continue
            readers = [c for c in view.downstream(node, 1) if view.base(c) in _CONSUMERS]
            if readers:
                yield GraphHit((node.id, *(r.id for r in readers)), details={"copy_elements": view.numel(node)})

    @staticmethod
    def _from_expand(view: GraphView, node: object) -> bool:
        frontier = list(view.producers(node))  # type: ignore[arg-type]
        while frontier:
            current = frontier.pop()
            if view.base(current) == "expand":
                return True
            if view.is_view(current):
                frontier.extend(view.producers(current))
        return False
