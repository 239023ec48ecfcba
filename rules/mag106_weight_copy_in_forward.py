from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class WeightCopyInForward(Rule):
    """A parameter transposed and copied (``.t().contiguous()``, ``.T.clone()``) on every forward call.

    The copy of a weight that does not change between calls is recomputed and
    re-allocated on every call: a full read and write of the parameter each
    time. Store the transposed layout once (in ``__init__`` or a load hook), or
    let the consumer take the transposed view (``F.linear`` and ``matmul`` accept
    strided operands without a copy).

    References: https://pytorch.org/docs/stable/generated/torch.Tensor.contiguous.html,
    https://pytorch.org/docs/stable/generated/torch.nn.functional.linear.html.
    """

    id = "MAG106"
    name = "weight-copy-in-forward"
    category = "Redundant computation"
    message = "a parameter is transposed and copied on every call; keep one copy in that layout"
    suggestion = "precompute the transposed weight once, or pass the transposed view without .contiguous()"
    needles = (("forward", "contiguous("), ("forward", "clone("))
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\n\n\nclass M:\n    def __init__(self):\n        self.w_t = self.weight.t().contiguous()\n"),
        Valid(
            "import torch\n\n\nclass M:\n    def forward(self, x):\n        return x.transpose(1, 2).contiguous()\n",
            why="activations change every call; copying them may be needed",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\n\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
            "        return x @ self.weight.t().contiguous()\n",
            line=6,
        ),
        Invalid(
            "import torch\n\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
            "        w = self.proj.weight.T.clone()\n        return x @ w\n"
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        function = ctx.function()
        if function is None or function.name.value != "forward":
            return
        layout = ctx.method_receiver(node, "contiguous", "clone")
        if layout is None:
            return
        base = _transposed(ctx, layout)
        if base is not None and _is_self_attribute(base):
            yield SourceHit(node)


def _transposed(ctx: SourceContext, node: cst.CSTNode) -> cst.BaseExpression | None:
    if isinstance(node, cst.Attribute) and node.attr.value in ("T", "mT"):
        return node.value
    return ctx.method_receiver(node, "t", "transpose", "permute")


def _is_self_attribute(node: cst.CSTNode) -> bool:
    """``self.weight``, ``self.proj.weight``: state of the module, not an activation."""
    while isinstance(node, cst.Attribute):
        node = node.value
    return isinstance(node, cst.Name) and node.value == "self"
