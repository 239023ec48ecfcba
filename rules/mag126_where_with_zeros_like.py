from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class WhereWithZerosLike(Rule):
    """``torch.where(c, x, torch.zeros_like(x))``: a whole tensor of zeros allocated and filled to select from.

    ``torch.where`` accepts a Python scalar for either branch (PyTorch >= 2.0),
    so the zeros tensor (an allocation and a full write) is not needed. Fires
    when the other branch is ``x`` itself or another ``*_like(x)`` tensor (same
    shape and dtype by construction, so the result does not change).

    References: https://pytorch.org/docs/stable/generated/torch.where.html.
    """

    id = "MAG126"
    name = "where-with-zeros-like"
    category = "Redundant computation"
    message = "a full tensor of zeros is built only to be selected from; torch.where takes the scalar"
    suggestion = "torch.where(c, x, 0)"
    fixable = True
    needles = ("zeros_like",)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\ny = torch.where(c, x, 0)\n"),
        Valid("import torch\ny = torch.where(c, x, torch.zeros_like(z))\n", why="shape from another tensor"),
        Valid(
            "import torch\ny = torch.where(c, torch.ones_like(z), torch.zeros_like(x))\n",
            why="the branches are shaped like different tensors",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\ny = torch.where(mask, x, torch.zeros_like(x))\n",
            expected_fix="import torch\ny = torch.where(mask, x, 0)\n",
            line=2,
        ),
        Invalid(
            "import torch\ny = torch.where(mask, torch.zeros_like(x), x)\n",
            expected_fix="import torch\ny = torch.where(mask, 0, x)\n",
        ),
        Invalid(
            "import torch\ny = torch.where(x != 0, torch.ones_like(x), torch.zeros_like(x))\n",
            expected_fix="import torch\ny = torch.where(x != 0, torch.ones_like(x), 0)\n",
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if not ctx.is_call(node, "torch.where") or not isinstance(node, cst.Call) or len(node.args) != 3:
            return
        if any(a.keyword is not None or a.star for a in node.args):
            return
        first, second = node.args[1].value, node.args[2].value
        for zeros, other in ((second, first), (first, second)):
            if (
                ctx.is_call(zeros, "torch.zeros_like")
                and isinstance(zeros, cst.Call)
                and len(zeros.args) == 1
                and _shaped_like(ctx, other, zeros.args[0].value)
            ):
                yield SourceHit(zeros, replacement=cst.Integer("0"))
                return


_LIKE = tuple(f"torch.{name}_like" for name in ("ones", "zeros", "full", "empty", "rand", "randn"))


def _shaped_like(ctx: SourceContext, other: cst.BaseExpression, tensor: cst.BaseExpression) -> bool:
    """``other`` is ``tensor`` itself or a ``*_like(tensor)``: the zeros add no shape or dtype of their own."""
    if ctx.same(other, tensor):
        return True
    return isinstance(other, cst.Call) and ctx.is_call(other, *_LIKE) and ctx.same(ctx.arg(other, 0, "input"), tensor)
