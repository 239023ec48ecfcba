from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import matmul_operands
from magneton.rules.source import SourceContext


class DiagonalOfProduct(Rule):
    """The diagonal (or trace) of a full matrix product: ``torch.diag(a @ b)``, ``torch.trace(a @ b)``.

    The product costs O(n^2 k) and writes n^2 elements of which n (or one sum)
    are kept; ``einsum("ij,ji->i", a, b)`` computes just the diagonal in O(n k).

    References: https://pytorch.org/docs/stable/generated/torch.einsum.html,
    https://pytorch.org/docs/stable/generated/torch.diagonal.html.
    """

    id = "MAG124"
    name = "diagonal-of-product"
    category = "Redundant computation"
    message = "a full matrix product computed to keep only its diagonal (or trace)"
    suggestion = 'torch.einsum("ij,ji->i", a, b) (diagonal) or torch.einsum("ij,ji->", a, b) (trace)'
    fixable = True
    needles = (("diag", "@"), ("diag", "mm"), ("trace", "@"), ("trace", "mm"))
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\nd = torch.diag(m)\n"),
        Valid("import torch\nd = torch.diagonal(a @ b, dim1=-2, dim2=-1)\n", why="a batched diagonal"),
    )
    INVALID = (
        Invalid(
            "import torch\nd = torch.diag(a @ b)\n",
            expected_fix='import torch\nd = torch.einsum("ij,ji->i", a, b)\n',
            line=2,
        ),
        Invalid(
            "import torch\nt = torch.trace(torch.mm(x, y.T))\n",
            expected_fix='import torch\nt = torch.einsum("ij,ji->", x, y.T)\n',
        ),
        Invalid(
            "import torch\nd = (a @ b).diagonal()\n", expected_fix='import torch\nd = torch.einsum("ij,ji->i", a, b)\n'
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.Call)
        name = ctx.call_name(node)
        if name in ("torch.diag", "torch.diagonal", "torch.trace") and len(node.args) == 1:
            product, reduce = node.args[0].value, name == "torch.trace"
        else:
            product = ctx.method_receiver(node, "diagonal", "diag", "trace")
            if product is None or node.args:
                return
            reduce = node.func.attr.value == "trace"  # type: ignore[attr-defined]
        operands = matmul_operands(ctx, product)
        if operands is None:
            return
        spec = "ij,ji->" if reduce else "ij,ji->i"
        a, b = (ctx.code(o) for o in operands)
        yield SourceHit(node, replacement=ctx.parse(f'{ctx.ref("torch.einsum")}("{spec}", {a}, {b})'))
