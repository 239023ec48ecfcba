from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class HandwrittenLayerNorm(Rule):
    """Layer normalisation written as ``(x - mean) / sqrt(var + eps)`` instead of ``F.layer_norm``.

    Mean, subtraction, variance, add, sqrt and division are separate kernels and
    separate passes over the activations; ``torch.nn.functional.layer_norm``
    computes mean and variance in one pass and normalises (and applies weight
    and bias) in a fused kernel.

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.layer_norm.html,
    https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html.
    """

    id = "MAG104"
    name = "handwritten-layer-norm"
    category = "API misuse"
    message = "layer norm written out as mean/sub/var/sqrt/div kernels; F.layer_norm fuses them"
    suggestion = "torch.nn.functional.layer_norm(x, (x.shape[-1],), weight, bias, eps) (mind var's unbiased flag)"
    needles = (("mean", "var"), ("mean", "rsqrt"))
    node_types = (cst.BinaryOperation,)
    VALID = (
        Valid("import torch.nn.functional as F\ny = F.layer_norm(x, (x.shape[-1],))\n"),
        Valid("import torch\ny = (x - x.mean()) / x.std()\n", why="a global standardisation, not a per-row norm"),
    )
    INVALID = (
        Invalid(
            "import torch\n\n\ndef norm(x, eps=1e-5):\n    mean = x.mean(-1, keepdim=True)\n"
            "    var = x.var(-1, keepdim=True, unbiased=False)\n    return (x - mean) / torch.sqrt(var + eps)\n",
            line=7,
        ),
        Invalid(
            "import torch\ny = (x - x.mean(dim=-1, keepdim=True)) * torch.rsqrt(x.var(dim=-1, keepdim=True) + 1e-5)\n"
        ),
        Invalid(
            "import torch\n\n\ndef f(h, eps):\n    mean = h.mean(-1, keepdim=True)\n"
            "    var = (h - mean).pow(2).mean(-1, keepdim=True)\n    return (h - mean) * torch.rsqrt(var + eps)\n",
            line=7,
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.BinaryOperation)
        centred = ctx.resolve(node.left)
        if not isinstance(centred, cst.BinaryOperation) or not isinstance(centred.operator, cst.Subtract):
            return
        if not _row_stat(ctx, ctx.resolve(centred.right), ("mean",)):
            return
        if isinstance(node.operator, cst.Divide):
            root = node.right
            names = ("torch.sqrt",)
            method = "sqrt"
        elif isinstance(node.operator, cst.Multiply):
            root = node.right
            names = ("torch.rsqrt",)
            method = "rsqrt"
        else:
            return
        if not isinstance(root, cst.Call):
            return
        inner = ctx.arg(root, 0) if ctx.is_call(root, *names) else ctx.method_receiver(root, method)
        if not isinstance(inner, cst.BinaryOperation) or not isinstance(inner.operator, cst.Add):
            return
        variance = ctx.resolve(inner.left)
        if _row_stat(ctx, variance, ("var",)) or _centred_mean_square(ctx, variance, centred):
            yield SourceHit(node)


def _row_stat(ctx: SourceContext, node: cst.CSTNode | None, methods: tuple[str, ...]) -> bool:
    """``x.mean(-1, keepdim=True)`` or ``torch.mean(x, -1, keepdim=True)`` (or var): a statistic per row."""
    if not isinstance(node, cst.Call):
        return False
    receiver = ctx.method_receiver(node, *methods)
    qualified = ctx.call_name(node)
    if receiver is None and qualified not in tuple(f"torch.{m}" for m in methods):
        return False
    keepdim = ctx.keywords(node).get("keepdim")
    return isinstance(keepdim, cst.Name) and keepdim.value == "True"


def _centred_mean_square(ctx: SourceContext, node: cst.CSTNode | None, centred: cst.BaseExpression) -> bool:
    """``(x - mean).pow(2).mean(-1, keepdim=True)`` (or ``** 2``): the biased variance, written out."""
    if not isinstance(node, cst.Call) or ctx.method_receiver(node, "mean") is None:
        return False
    squared = ctx.method_receiver(node, "mean")
    if isinstance(squared, cst.BinaryOperation) and isinstance(squared.operator, cst.Power):
        base = squared.left
    else:
        base = ctx.method_receiver(squared, "pow", "square") if squared is not None else None
    return base is not None and ctx.same(ctx.resolve(base), centred)
