from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import rebuild_call, softmax_parts
from magneton.rules.source import SourceContext


class LogOfSoftmax(Rule):
    """``log(softmax(x))`` written as two kernels instead of ``log_softmax(x)``.

    Two passes and an intermediate tensor instead of one fused kernel, and the
    two-step form underflows to ``-inf`` for very negative logits where
    ``log_softmax`` stays finite (it uses the log-sum-exp trick).

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.log_softmax.html.
    """

    id = "MAG115"
    name = "log-of-softmax"
    category = "API misuse"
    message = "log(softmax(x)) runs two kernels; log_softmax is one, and numerically stable"
    suggestion = "torch.log_softmax(x, dim) / F.log_softmax(x, dim)"
    fixable = True
    needles = (("log(", "softmax"), (".log()", "softmax"))
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\ny = torch.log_softmax(x, dim=-1)\n"),
        Valid("import torch\ny = torch.log(torch.sigmoid(x))\n", why="another rule's business, not a softmax"),
    )
    INVALID = (
        Invalid(
            "import torch\ny = torch.log(torch.softmax(x, dim=-1))\n",
            expected_fix="import torch\ny = torch.log_softmax(x, dim=-1)\n",
            line=2,
        ),
        Invalid(
            "import torch.nn.functional as F\ny = F.softmax(logits, 1).log()\n",
            expected_fix="import torch.nn.functional as F\ny = F.log_softmax(logits, 1)\n",
        ),
        Invalid(
            "import torch\ny = x.softmax(-1).log()\n",
            expected_fix="import torch\ny = x.log_softmax(-1)\n",
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if ctx.is_call(node, "torch.log") and isinstance(node, cst.Call) and len(node.args) == 1:
            inner = node.args[0].value
        else:
            inner = ctx.method_receiver(node, "log")
            if inner is None or not isinstance(node, cst.Call) or node.args:
                return
        if not isinstance(inner, cst.Call) or softmax_parts(ctx, inner) is None:
            return
        name = ctx.call_name(inner)
        if name is None:  # x.softmax(d) -> x.log_softmax(d)
            receiver = ctx.method_receiver(inner, "softmax")
            fixed = rebuild_call(ctx, inner, func=f"{ctx.code(receiver)}.log_softmax")  # type: ignore[arg-type]
        else:
            fixed = rebuild_call(ctx, inner, func=ctx.code(inner.func).removesuffix("softmax") + "log_softmax")
        yield SourceHit(node, replacement=fixed)
