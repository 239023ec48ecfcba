from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import SOFTMAX, rebuild_call, softmax_parts
from magneton.rules.source import SourceContext


class SoftmaxUpcastRoundTrip(Rule):
    """``softmax(x.float()).to(x.dtype)``: a float32 round trip around softmax in a half-precision model.

    Two extra conversion kernels, and the softmax itself reads and writes float32
    (twice the bytes). PyTorch's half and bfloat16 softmax kernels already
    accumulate in float32 and round once on output, so ``softmax(x, dim)`` on the
    half tensor gives the same rounded result without the round trip.

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.softmax.html,
    https://github.com/pytorch/pytorch/blob/main/aten/src/ATen/native/cuda/SoftMax.cu (accscalar_t).
    """

    id = "MAG111"
    name = "softmax-upcast-round-trip"
    category = "Redundant computation"
    message = "float32 round trip around softmax; half/bf16 softmax already accumulates in float32"
    suggestion = "softmax(x, dim=-1) on the half-precision tensor"
    fixable = True
    needles = (("softmax", "float"),)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\np = torch.softmax(x, dim=-1)\n"),
        Valid("import torch\np = torch.softmax(x.float(), dim=-1)\n", why="the float32 result is kept"),
        Valid("import torch\np = torch.softmax(x.float(), dim=-1).to(y.dtype)\n", why="cast to another tensor's dtype"),
    )
    INVALID = (
        Invalid(
            "import torch\np = torch.softmax(x.float(), dim=-1).to(x.dtype)\n",
            expected_fix="import torch\np = torch.softmax(x, dim=-1)\n",
            line=2,
        ),
        Invalid(
            "import torch\nimport torch.nn.functional as F\n"
            "w = F.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)\n",
            expected_fix="import torch\nimport torch.nn.functional as F\nw = F.softmax(scores, dim=-1)\n",
        ),
        Invalid(
            "import torch\np = scores.float().softmax(-1).type_as(scores)\n",
            expected_fix="import torch\np = scores.softmax(-1)\n",
        ),
        Invalid("import torch\np = torch.softmax(x.float(), dim=-1).half()\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        inner = ctx.method_receiver(node, "to", "type_as", "half", "bfloat16")
        if inner is None or not isinstance(node, cst.Call) or not isinstance(inner, cst.Call):
            return
        soft = softmax_parts(ctx, inner)
        if soft is None:
            return
        source, _ = soft
        dtype_kw = ctx.keywords(inner).get("dtype")
        upcast_source = _upcast_of(ctx, source)
        if upcast_source is None and dtype_kw is not None and ctx.qualified_name(dtype_kw) in _FLOAT32:
            upcast_source = source
        if upcast_source is None:
            return
        method = node.func.attr.value  # type: ignore[attr-defined]
        if method in ("half", "bfloat16"):
            yield SourceHit(node)  # the source was half or bf16 by all signs, but we cannot prove which
            return
        target = ctx.arg(node, 0, "dtype") if method == "to" else ctx.arg(node, 0)
        if method == "to" and len(node.args) != 1:
            return
        if method == "to" and not (
            isinstance(target, cst.Attribute) and target.attr.value == "dtype" and ctx.same(target.value, upcast_source)
        ):
            return
        if method == "type_as" and not ctx.same(target, upcast_source):
            return
        if ctx.is_call(inner, *SOFTMAX):
            fixed = rebuild_call(ctx, inner, drop=("dtype",), first=ctx.code(upcast_source))
        else:
            fixed = rebuild_call(ctx, inner, func=f"{ctx.code(upcast_source)}.softmax", drop=("dtype",))
        yield SourceHit(node, replacement=fixed)


_FLOAT32 = ("torch.float32", "torch.float")


def _upcast_of(ctx: SourceContext, node: cst.CSTNode | None) -> cst.BaseExpression | None:
    """X of ``X.float()`` or ``X.to(torch.float32)``."""
    receiver = ctx.method_receiver(node, "float") if node is not None else None
    if receiver is not None and isinstance(node, cst.Call) and not node.args:
        return receiver
    receiver = ctx.method_receiver(node, "to") if node is not None else None
    if (
        receiver is not None
        and isinstance(node, cst.Call)
        and len(node.args) == 1
        and ctx.qualified_name(node.args[0].value) in _FLOAT32
    ):
        return receiver
    return None
