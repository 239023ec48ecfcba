from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class WhereWithZerosLike(Rule):
    """``torch.where(c, x, torch.zeros_like(x))``: a whole tensor of zeros allocated and filled to select from.

    ``torch.where`` accepts a Python scalar for either branch (PyTorch >= 2.0),
    so the zeros tensor (an allocation and a full write) is not needed.

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
                and ctx.same(zeros.args[0].value, other)
            ):
                yield SourceHit(zeros, replacement=cst.Integer("0"))
                return
