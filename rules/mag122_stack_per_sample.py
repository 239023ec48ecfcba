from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import walk
from magneton.rules.source import SourceContext


class StackPerSample(Rule):
    """``torch.stack([f(x[i]) for i in range(x.shape[0])])``: a batch processed one sample at a time.

    n small kernels instead of one batched kernel, plus the stacking copy. Most
    tensor ops already broadcast over a leading batch axis; otherwise
    ``torch.vmap(f)(x)`` vectorises the function.

    References: https://pytorch.org/docs/stable/generated/torch.vmap.html,
    https://pytorch.org/docs/stable/generated/torch.stack.html.
    """

    id = "MAG122"
    name = "stack-per-sample"
    category = "API misuse"
    message = "a batch processed one sample at a time and stacked; apply the op to the batch (or torch.vmap)"
    suggestion = "f(x) on the whole batch, or torch.vmap(f)(x)"
    needles = (("stack(", "range("), ("cat(", "range("))
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\ny = torch.stack([a, b, c])\n"),
        Valid("import torch\ny = torch.stack([load(p) for p in paths])\n", why="not indexing a tensor batch"),
        Valid(
            "import torch\ny = torch.cat([x[i, : n[i]] for i in range(len(n))])\n",
            why="a ragged selection per sample, no function applied",
        ),
    )
    INVALID = (
        Invalid("import torch\ny = torch.stack([f(x[i]) for i in range(x.shape[0])])\n", line=2),
        Invalid("import torch\ny = torch.stack([model(batch[b]) for b in range(len(batch))], dim=0)\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if not ctx.is_call(node, "torch.stack", "torch.cat"):
            return
        assert isinstance(node, cst.Call)
        pieces = ctx.arg(node, 0, "tensors")
        if not isinstance(pieces, (cst.ListComp, cst.GeneratorExp)) or pieces.for_in.inner_for_in is not None:
            return
        loop = pieces.for_in
        if not isinstance(loop.target, cst.Name):
            return
        batch = _range_over(ctx, loop.iter)
        if batch is None or not isinstance(pieces.elt, cst.Call):
            return  # a bare x[i, :n_i] per sample is a ragged selection, not an op to batch
        for inner in walk(pieces.elt):
            if (
                isinstance(inner, cst.Subscript)
                and ctx.same(inner.value, batch)
                and len(inner.slice) >= 1
                and isinstance(inner.slice[0].slice, cst.Index)
                and isinstance(inner.slice[0].slice.value, cst.Name)
                and inner.slice[0].slice.value.value == loop.target.value
            ):
                yield SourceHit(node)
                return


def _range_over(ctx: SourceContext, node: cst.BaseExpression) -> cst.BaseExpression | None:
    """X of ``range(X.shape[0])``, ``range(X.size(0))`` or ``range(len(X))``."""
    if not ctx.is_call(node, "builtins.range") or not isinstance(node, cst.Call) or len(node.args) != 1:
        return None
    bound = node.args[0].value
    if ctx.is_call(bound, "builtins.len") and isinstance(bound, cst.Call) and len(bound.args) == 1:
        return bound.args[0].value
    if (
        isinstance(bound, cst.Subscript)
        and isinstance(bound.value, cst.Attribute)
        and bound.value.attr.value == "shape"
    ):
        return bound.value.value
    receiver = ctx.method_receiver(bound, "size")
    if receiver is not None and isinstance(bound, cst.Call) and ctx.number(ctx.arg(bound, 0)) == 0:
        return receiver
    return None
