from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import walk
from magneton.rules.source import SourceContext


class LoopOverHeads(Rule):
    """A Python loop applying each module of a list (heads, experts) to the same input, results concatenated.

    n small matmuls (one per head) under-use the hardware and pay n kernel
    launches and a concatenation copy; one module with n times the output
    features (or a batched ``bmm`` over stacked weights) computes the same thing
    in one kernel. The classic case is multi-head attention written as a
    ``ModuleList`` of single heads.

    References: https://pytorch.org/docs/stable/generated/torch.bmm.html,
    https://pytorch.org/tutorials/intermediate/scaled_dot_product_attention_tutorial.html.
    """

    id = "MAG118"
    name = "loop-over-heads"
    category = "API misuse"
    message = "each module of a list is applied to the same input in a Python loop; one batched op does it"
    suggestion = "merge the per-head weights into one Linear (or stack them and use torch.bmm / einsum)"
    needles = (("cat(", "self."), ("stack(", "self."), ("concat(", "self."))
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\nout = torch.cat([blk(x) for blk in blocks])\n", why="not a module attribute: may be data"),
        Valid(
            "import torch\nouts = torch.cat([h(x[i]) for i, h in enumerate(self.heads)])\n",
            why="each head sees a different slice",
        ),
        Valid(
            "import torch\nfor layer in self.layers:\n    x = layer(x)\n", why="a sequential stack, not parallel heads"
        ),
    )
    INVALID = (
        Invalid("import torch\nout = torch.cat([head(x) for head in self.heads], dim=-1)\n", line=2),
        Invalid(
            "import torch\n\n\ndef forward(self, x):\n    outs = []\n    for expert in self.experts:\n"
            "        outs.append(expert(x))\n    return torch.stack(outs, dim=1)\n",
            line=8,
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if not ctx.is_call(node, "torch.cat", "torch.stack", "torch.concat"):
            return
        assert isinstance(node, cst.Call)
        pieces = ctx.arg(node, 0, "tensors")
        if isinstance(pieces, (cst.ListComp, cst.GeneratorExp)):
            if _same_input_per_module(pieces.elt, pieces.for_in):
                yield SourceHit(node)
            return
        if isinstance(pieces, cst.Name):
            for loop in _loops_appending(ctx, pieces.value):
                if _same_input_per_module(loop[1], loop[0]):
                    yield SourceHit(node)
                    return


def _module_list(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self"


def _same_input_per_module(element: cst.BaseExpression, loop: cst.CompFor | cst.For) -> bool:
    """``h(x)`` where ``h`` runs over ``self.<list>`` and ``x`` does not depend on the loop."""
    if not isinstance(loop.target, cst.Name) or not _module_list(loop.iter):
        return False
    if not isinstance(element, cst.Call) or not isinstance(element.func, cst.Name):
        return False
    if element.func.value != loop.target.value or not element.args:
        return False
    used = {n.value for a in element.args for n in walk(a) if isinstance(n, cst.Name)}
    return loop.target.value not in used


def _loops_appending(ctx: SourceContext, name: str) -> Iterator[tuple[cst.For, cst.BaseExpression]]:
    """For loops in the function that do ``name.append(<expr>)``, with the appended expression."""
    scope = ctx.function()
    if scope is None:
        return
    for loop in walk(scope):
        if not isinstance(loop, cst.For):
            continue
        for inner in walk(loop.body):
            if (
                isinstance(inner, cst.Call)
                and isinstance(inner.func, cst.Attribute)
                and inner.func.attr.value == "append"
                and isinstance(inner.func.value, cst.Name)
                and inner.func.value.value == name
                and len(inner.args) == 1
            ):
                yield loop, inner.args[0].value
