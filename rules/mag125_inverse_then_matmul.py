from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import matmul_operands
from magneton.rules.source import SourceContext


class InverseThenMatmul(Rule):
    """``inv(A) @ B``: an explicit inverse used only to solve a linear system.

    Forming the inverse costs about three times an LU factorisation and is less
    accurate; ``torch.linalg.solve(A, B)`` factorises once and back-substitutes.
    The PyTorch documentation of ``linalg.inv`` recommends ``solve`` for this.

    References: https://pytorch.org/docs/stable/generated/torch.linalg.inv.html,
    https://pytorch.org/docs/stable/generated/torch.linalg.solve.html.
    """

    id = "MAG125"
    name = "inverse-then-matmul"
    category = "API misuse"
    message = "explicit inverse multiplied by a matrix; linalg.solve is cheaper and more accurate"
    suggestion = "torch.linalg.solve(A, B)"
    fixable = True
    needles = ("inv(", "inverse(")
    node_types = (cst.BinaryOperation, cst.Call)
    VALID = (
        Valid("import torch\nx = torch.linalg.solve(a, b)\n"),
        Valid("import torch\na_inv = torch.linalg.inv(a)\n", why="the inverse itself is the result"),
        Valid("import torch\nx = b @ torch.linalg.inv(a)\n", why="a right-side inverse: solve needs a transpose"),
    )
    INVALID = (
        Invalid(
            "import torch\nx = torch.linalg.inv(a) @ b\n",
            expected_fix="import torch\nx = torch.linalg.solve(a, b)\n",
            line=2,
        ),
        Invalid(
            "import torch as t\nx = t.matmul(t.inverse(cov), d)\n",
            expected_fix="import torch as t\nx = t.linalg.solve(cov, d)\n",
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        operands = matmul_operands(ctx, node)
        if operands is None:
            return
        inverse, rhs = operands
        if not ctx.is_call(inverse, "torch.linalg.inv", "torch.inverse") or not isinstance(inverse, cst.Call):
            return
        if len(inverse.args) != 1:
            return
        matrix = ctx.code(inverse.args[0].value)
        yield SourceHit(node, replacement=ctx.parse(f"{ctx.ref('torch.linalg.solve')}({matrix}, {ctx.code(rhs)})"))
