from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import as_operand, softmax_parts
from magneton.rules.source import SourceContext


class ArgmaxOfSoftmax(Rule):
    """``argmax(softmax(x))``: softmax is monotonic, so the argmax of the logits is the same.

    The softmax (exp, sum, divide over the whole tensor) changes nothing about
    which element is largest; taking the argmax of the logits skips it.

    References: https://pytorch.org/docs/stable/generated/torch.argmax.html,
    https://pytorch.org/docs/stable/generated/torch.nn.functional.softmax.html.
    """

    id = "MAG123"
    name = "argmax-of-softmax"
    category = "Redundant computation"
    message = "argmax of a softmax: softmax is monotonic, argmax of the logits is the same"
    suggestion = "x.argmax(dim) on the logits"
    fixable = True
    needles = ("argmax",)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\nlabel = logits.argmax(-1)\n"),
        Valid(
            "import torch\np = torch.softmax(x, -1)\nlabel = p.argmax(-1)\nconf = p.max(-1)\n", why="p is used again"
        ),
        Valid("import torch\nlabel = torch.softmax(x, dim=0).argmax(dim=1)\n", why="another axis than the softmax's"),
    )
    INVALID = (
        Invalid(
            "import torch\nlabel = torch.softmax(logits, dim=-1).argmax(dim=-1)\n",
            expected_fix="import torch\nlabel = logits.argmax(dim=-1)\n",
            line=2,
        ),
        Invalid(
            "import torch\nimport torch.nn.functional as F\nlabel = torch.argmax(F.softmax(a + b, dim=1), dim=1)\n",
            expected_fix="import torch\nimport torch.nn.functional as F\nlabel = torch.argmax(a + b, dim=1)\n",
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.Call)
        if ctx.is_call(node, "torch.argmax"):
            inner, dim, method = ctx.arg(node, 0, "input"), ctx.arg(node, 1, "dim"), False
        else:
            inner = ctx.method_receiver(node, "argmax")
            dim, method = ctx.arg(node, 0, "dim"), True
        soft = softmax_parts(ctx, inner)
        if soft is None or dim is None or soft[1] is None or ctx.number(dim) is None:
            return
        if ctx.number(dim) != ctx.number(soft[1]):
            return
        logits = as_operand(soft[0]) if method else soft[0]
        yield SourceHit(inner, replacement=logits)  # type: ignore[arg-type]
