from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

_MATMUL = ("matmul", "bmm", "baddbmm", "mm", "einsum")
_SOFTMAX = ("softmax", "safe_softmax")
_BETWEEN = ("mul", "div", "add", "masked_fill", "where", "dropout", "native_dropout", "to", "to_copy")


class UnfusedAttention(Rule):
    """Attention running as matmul, (scale, mask,) softmax and matmul operators instead of one SDPA kernel.

    The graph holds the whole (sequence x sequence) score matrix and passes over
    it three or four times; ``scaled_dot_product_attention`` keeps scores on chip
    (FlashAttention / memory-efficient kernels) or at least fuses the softmax.
    Found in the captured graph, so it also fires for library models that run
    the "eager" attention implementation (transformers:
    ``attn_implementation="sdpa"`` selects the fused one).

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html,
    https://huggingface.co/docs/transformers/perf_infer_gpu_one#pytorch-scaled-dot-product-attention,
    arXiv 2205.14135, arXiv 2512.08365.
    """

    id = "MAG202"
    name = "unfused-attention"
    category = "API misuse"
    message = "attention runs as separate matmul/softmax/matmul operators; SDPA fuses them"
    suggestion = "torch.nn.functional.scaled_dot_product_attention (transformers: attn_implementation='sdpa')"
    VALID = (
        Valid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef workload():\n"
            "    q = torch.randn(1, 2, 16, 8)\n    return F.scaled_dot_product_attention, (q, q, q)\n"
        ),
        Valid(
            "import torch\n\n\ndef f(x, w):\n    return torch.softmax(x @ w, dim=-1)\n\n\n"
            "def workload():\n    return f, (torch.randn(4, 8), torch.randn(8, 8))\n",
            why="a classifier head: no second matmul",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\n\n\ndef attend(q, k, v):\n"
            "    return torch.softmax(q @ k.transpose(-2, -1) / 8.0, dim=-1) @ v\n\n\n"
            "def workload():\n    q = torch.randn(1, 2, 16, 8)\n    return attend, (q, q, q)\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        for softmax in view.of_base(*_SOFTMAX):
            first = _reach(view, softmax, upstream=True)
            second = _reach(view, softmax, upstream=False)
            if first is not None and second is not None:
                yield GraphHit((softmax.id, first.id, second.id))


def _reach(view: GraphView, start: object, upstream: bool) -> object | None:
    """The nearest matmul within three steps, through scale/mask/dropout/cast operators only."""
    frontier = [start]
    for _ in range(3):
        following = []
        for node in frontier:
            for neighbour in view.through_views(node, upstream):  # type: ignore[arg-type]
                base = view.base(neighbour)
                if base in _MATMUL:
                    return neighbour
                if base in _BETWEEN:
                    following.append(neighbour)
        frontier = following
    return None
