from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import LOG_SOFTMAX, rebuild_call
from magneton.rules.source import SourceContext


class NllOfLogSoftmax(Rule):
    """Cross entropy assembled by hand: ``nll_loss(log_softmax(x, dim=1), y)`` or ``-(y * log_softmax(x)).sum()``.

    ``F.cross_entropy`` computes exactly ``nll_loss(log_softmax(x, 1), y)`` in a
    fused path that skips storing the full log-probability tensor where the
    backend allows. PyTorch issue 141822 (the ``cross_entropy`` path) cost 2.6%
    energy in the Magneton study.

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.cross_entropy.html,
    https://github.com/pytorch/pytorch/issues/141822, arXiv 2512.08365.
    """

    id = "MAG116"
    name = "handwritten-cross-entropy"
    category = "API misuse"
    message = "cross entropy assembled from log_softmax and a loss; F.cross_entropy does it in one call"
    suggestion = "torch.nn.functional.cross_entropy(logits, target) (label_smoothing= and soft targets supported)"
    fixable = True
    needles = ("log_softmax",)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch.nn.functional as F\nloss = F.cross_entropy(x, y)\n"),
        Valid(
            "import torch.nn.functional as F\nlp = F.log_softmax(x, dim=-1)\n", why="log-probabilities are the output"
        ),
    )
    INVALID = (
        Invalid(
            "import torch.nn.functional as F\nloss = F.nll_loss(F.log_softmax(x, dim=1), y, ignore_index=-100)\n",
            expected_fix="import torch.nn.functional as F\nloss = F.cross_entropy(x, y, ignore_index=-100)\n",
            line=2,
        ),
        Invalid("import torch.nn.functional as F\nloss = F.nll_loss(F.log_softmax(x, dim=-1), y)\n"),
        Invalid("import torch\nloss = -(target * torch.log_softmax(x, dim=-1)).sum(dim=-1).mean()\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.Call)
        if ctx.is_call(node, "torch.nn.functional.nll_loss"):
            inner = ctx.arg(node, 0, "input")
            if not ctx.is_call(ctx.resolve(inner), *LOG_SOFTMAX):
                return
            direct = ctx.is_call(inner, *LOG_SOFTMAX)
            lsm = ctx.resolve(inner)
            assert isinstance(lsm, cst.Call)
            dim = ctx.arg(lsm, 1, "dim")
            replacement = None
            if direct and ctx.number(dim) == 1 and set(ctx.keywords(lsm)) <= {"dim"}:
                logits = ctx.arg(lsm, 0, "input")
                name = ctx.code(node.func).removesuffix("nll_loss") + "cross_entropy"
                replacement = rebuild_call(ctx, node, func=name, first=ctx.code(logits))  # type: ignore[arg-type]
            yield SourceHit(node, replacement=replacement)
            return
        # -(target * log_softmax(x)).sum(...): a soft-label cross entropy
        receiver = ctx.method_receiver(node, "sum")
        if (
            isinstance(receiver, cst.BinaryOperation)
            and isinstance(receiver.operator, cst.Multiply)
            and isinstance(ctx.parent(), (cst.UnaryOperation, cst.Call, cst.Attribute))
            and any(ctx.is_call(side, *LOG_SOFTMAX) for side in (receiver.left, receiver.right))
            and _negated(ctx)
        ):
            yield SourceHit(node)


def _negated(ctx: SourceContext) -> bool:
    """The sum is negated somewhere up its own expression (``-(...).sum().mean()``)."""
    for ancestor in reversed(ctx.stack):
        if isinstance(ancestor, cst.UnaryOperation) and isinstance(ancestor.operator, cst.Minus):
            return True
        if isinstance(ancestor, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
            return False
    return False
