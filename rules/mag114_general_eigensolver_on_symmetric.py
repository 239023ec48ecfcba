from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import matmul_operands, transposed_last_two
from magneton.rules.source import SourceContext

_GENERAL = {
    "torch.linalg.eigvals": "torch.linalg.eigvalsh",
    "torch.linalg.eig": "torch.linalg.eigh",
}


class GeneralEigensolverOnSymmetric(Rule):
    """A general eigen-solver (``linalg.eig``/``eigvals``) on a matrix that is symmetric by construction.

    ``X @ X.T``, ``X.T @ X``, ``A + A.T`` and covariance matrices are symmetric;
    the symmetric solvers (``eigh``, ``eigvalsh``) use a tridiagonal reduction
    that is several times cheaper than the general Hessenberg QR, return real
    values, and are more accurate. Hugging Face issue 34570 (``eigvals`` where
    ``eigvalsh`` fits) cost 29.1% energy in the Magneton study. Not auto-fixed:
    ``eigvalsh`` returns real, ascending values while ``eigvals`` returns complex
    ones in no order, so the calling code may need changes.

    References: https://pytorch.org/docs/stable/generated/torch.linalg.eigvalsh.html,
    https://github.com/huggingface/transformers/issues/34570, arXiv 2512.08365.
    """

    id = "MAG114"
    name = "general-eigensolver-on-symmetric"
    category = "API misuse"
    message = "general eigen-solver on a symmetric matrix; eigh/eigvalsh are cheaper and exact here"
    suggestion = "torch.linalg.eigvalsh(A) (real, ascending) or torch.linalg.eigh(A)"
    needles = ("eigvals", "linalg.eig", "eig(")
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\nw = torch.linalg.eigvalsh(x @ x.T)\n"),
        Valid("import torch\nw = torch.linalg.eigvals(a @ b)\n", why="a product of two different matrices"),
    )
    INVALID = (
        Invalid("import torch\nw = torch.linalg.eigvals(x @ x.T)\n", line=2),
        Invalid("from torch import linalg\n\n\ndef spectrum(h):\n    gram = h.mT @ h\n    return linalg.eig(gram)\n"),
        Invalid("import torch\nw = torch.linalg.eigvals(torch.cov(x))\n"),
        Invalid("import torch\nw = torch.linalg.eigvals((a + a.T) / 2)\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        name = ctx.call_name(node)
        if name not in _GENERAL or not isinstance(node, cst.Call):
            return
        matrix = ctx.resolve(ctx.arg(node, 0, "A"))
        if _symmetric(ctx, matrix):
            yield SourceHit(node, message=f"{name} on a symmetric matrix; {_GENERAL[name]} is cheaper and exact here")


def _symmetric(ctx: SourceContext, node: cst.CSTNode | None) -> bool:
    if node is None:
        return False
    if ctx.is_call(node, "torch.cov", "torch.corrcoef"):
        return True
    operands = matmul_operands(ctx, node)
    if operands is not None:
        a, b = operands
        return ctx.same(transposed_last_two(ctx, b), a) or ctx.same(transposed_last_two(ctx, a), b)
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, (cst.Divide, cst.Multiply)):
            return _symmetric(ctx, node.left) or (
                isinstance(node.operator, cst.Multiply) and _symmetric(ctx, node.right)
            )
        if isinstance(node.operator, cst.Add):
            return ctx.same(transposed_last_two(ctx, node.right), node.left) or ctx.same(
                transposed_last_two(ctx, node.left), node.right
            )
    return False
