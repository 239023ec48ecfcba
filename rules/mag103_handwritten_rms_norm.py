from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class HandwrittenRmsNorm(Rule):
    """RMS normalisation written as ``x * rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)`` instead of ``F.rms_norm``.

    The hand-written form runs pow, mean, add, rsqrt and mul as separate kernels,
    each a full pass over the activations (plus the weight multiply).
    ``torch.nn.functional.rms_norm`` (PyTorch >= 2.4; ``torch.nn.RMSNorm`` as a
    module) computes it in a fused kernel where the backend has one.

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.rms_norm.html,
    https://pytorch.org/docs/stable/generated/torch.nn.RMSNorm.html, arXiv 1910.07467.
    """

    id = "MAG103"
    name = "handwritten-rms-norm"
    category = "API misuse"
    message = "RMS norm written out as pow/mean/add/rsqrt/mul kernels; F.rms_norm fuses them"
    suggestion = "torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps=eps) or torch.nn.RMSNorm"
    fixable = True
    needles = ("rsqrt",)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch.nn.functional as F\ny = F.rms_norm(x, (x.shape[-1],), eps=1e-6)\n"),
        Valid("import torch\ny = torch.rsqrt(var + 1e-5)\n", why="a variance from elsewhere: not provably an RMS norm"),
        Valid(
            "import torch\n\n\ndef f(h, eps):\n    mean = h.mean(-1, keepdim=True)\n"
            "    var = (h - mean).pow(2).mean(-1, keepdim=True)\n    return (h - mean) * torch.rsqrt(var + eps)\n",
            why="mean-centred: a layer norm (MAG104), not an RMS norm",
        ),
        Valid(
            "import torch\ninv_rms = torch.rsqrt(x.float().square().mean(-1, keepdim=True) + 1e-6)\n",
            why="only the inverse RMS, nothing normalised here: no fused op takes its place",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\ny = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)\n",
            expected_fix="import torch\ny = torch.nn.functional.rms_norm(x, (x.shape[-1],), eps=1e-6)\n",
        ),
        Invalid(
            "import torch\n\n\ndef forward(self, hidden):\n"
            "    variance = hidden.pow(2).mean(-1, keepdim=True)\n"
            "    hidden = hidden * torch.rsqrt(variance + self.eps)\n    return self.weight * hidden\n",
            line=6,
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.Call)
        if ctx.is_call(node, "torch.rsqrt"):
            inner = ctx.arg(node, 0, "input")
        else:
            receiver = ctx.method_receiver(node, "rsqrt")
            inner = receiver if receiver is not None and not node.args else None
        if not isinstance(inner, cst.BinaryOperation) or not isinstance(inner.operator, cst.Add):
            return
        squared = _mean_square_of(ctx, ctx.resolve(inner.left))
        if squared is None:
            return
        centred = ctx.resolve(squared)
        if isinstance(centred, cst.BinaryOperation) and isinstance(centred.operator, cst.Subtract):
            return  # (x - mean) squared: a layer norm, MAG104's business
        parent = ctx.parent()
        if not (isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Multiply)):
            return  # only the inverse RMS is computed here; no fused op replaces that alone
        if (
            isinstance(parent, cst.BinaryOperation)
            and isinstance(parent.operator, cst.Multiply)
            and parent.right is node
            and inner.left is not None
            and not isinstance(ctx.resolve(inner.left), cst.Name)
            and ctx.resolve(inner.left) is inner.left
            and ctx.same(parent.left, squared)
        ):
            norm = ctx.ref("torch.nn.functional.rms_norm")
            x = ctx.code(squared)
            fix = ctx.parse(f"{norm}({x}, ({x}.shape[-1],), eps={ctx.code(inner.right)})")
            yield SourceHit(parent, replacement=fix)
            return
        yield SourceHit(node)


def _mean_square_of(ctx: SourceContext, node: cst.CSTNode | None) -> cst.BaseExpression | None:
    """X of ``X.pow(2).mean(-1, keepdim=True)`` / ``(X ** 2).mean(-1, keepdim=True)`` / ``X.square().mean(...)``."""
    receiver = ctx.method_receiver(node, "mean") if node is not None else None
    if receiver is None or not isinstance(node, cst.Call):
        return None
    if ctx.number(ctx.arg(node, 0, "dim")) != -1:
        return None
    keepdim = ctx.arg(node, 1, "keepdim")
    if not (isinstance(keepdim, cst.Name) and keepdim.value == "True"):
        return None
    if isinstance(receiver, cst.BinaryOperation) and isinstance(receiver.operator, cst.Power):
        return receiver.left if ctx.number(receiver.right) == 2 else None
    base = ctx.method_receiver(receiver, "pow")
    if base is not None and isinstance(receiver, cst.Call) and ctx.number(ctx.arg(receiver, 0)) == 2:
        return base
    base = ctx.method_receiver(receiver, "square")
    return base
