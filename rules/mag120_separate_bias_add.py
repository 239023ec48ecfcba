from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import as_operand, matmul_operands, transposed_last_two
from magneton.rules.source import SourceContext


class SeparateBiasAdd(Rule):
    """A bias added after the matmul (``torch.mm(x, w) + b``) instead of fused into it (``addmm``, ``F.linear``).

    The separate add re-reads and re-writes the whole output; ``addmm``,
    ``baddbmm`` and ``F.linear`` let the GEMM start from the bias (BLAS beta=1)
    or add it in the epilogue. PyTorch issue 141210 (``addmm``) cost 9.1% energy
    in the Magneton study.

    References: https://pytorch.org/docs/stable/generated/torch.addmm.html,
    https://github.com/pytorch/pytorch/issues/141210, arXiv 2512.08365.
    """

    id = "MAG120"
    name = "separate-bias-add"
    category = "API misuse"
    message = "bias added in a separate kernel after the matmul; addmm / F.linear fuse it"
    suggestion = "torch.addmm(b, x, w) for 2-D, torch.baddbmm for batches, F.linear(x, W, b) for x @ W.T + b"
    fixable = True
    needles = ((" @ ", "+"), ("mm(", "+"), ("matmul(", "+"))
    node_types = (cst.BinaryOperation,)
    VALID = (
        Valid("import torch\ny = torch.addmm(b, x, w)\n"),
        Valid("import torch\ny = x @ w + h @ u\n", why="two products: not a bias"),
        Valid("import torch\ny = (x @ w) * 2 + 1\n", why="the product is scaled first"),
        Valid("import torch\ny = acc + attn @ v\n", why="a full-size accumulation, not a bias; rank unknown"),
    )
    INVALID = (
        Invalid(
            "import torch\ny = torch.mm(x, w) + b\n", expected_fix="import torch\ny = torch.addmm(b, x, w)\n", line=2
        ),
        Invalid(
            "import torch\ny = bias + torch.bmm(a, c)\n", expected_fix="import torch\ny = torch.baddbmm(bias, a, c)\n"
        ),
        Invalid(
            "import torch\ny = x @ self.weight.t() + self.bias\n",
            expected_fix="import torch\ny = torch.nn.functional.linear(x, self.weight, self.bias)\n",
        ),
        Invalid("import torch\ny = x @ w + b\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.BinaryOperation)
        if not isinstance(node.operator, cst.Add):
            return
        for product, bias in ((node.left, node.right), (node.right, node.left)):
            operands = matmul_operands(ctx, product)
            if operands is None or matmul_operands(ctx, bias) is not None:
                continue
            explicit = ctx.call_name(product) in ("torch.mm", "torch.bmm")
            if not explicit and not _named_bias(bias):
                continue  # ``a + b @ c`` with a full-size ``a`` is an accumulation addmm does not clearly fit
            yield SourceHit(node, replacement=self._fix(ctx, product, operands, bias))
            return

    @staticmethod
    def _fix(
        ctx: SourceContext,
        product: cst.BaseExpression,
        operands: tuple[cst.BaseExpression, cst.BaseExpression],
        bias: cst.BaseExpression,
    ) -> cst.CSTNode | None:
        a, b = (ctx.code(o) for o in operands)
        name = ctx.call_name(product)
        if name == "torch.mm":
            return ctx.parse(f"{ctx.ref('torch.addmm')}({ctx.code(bias)}, {a}, {b})")
        if name == "torch.bmm":
            return ctx.parse(f"{ctx.ref('torch.baddbmm')}({ctx.code(bias)}, {a}, {b})")
        weight = transposed_last_two(ctx, operands[1])
        # F.linear needs a 1-D bias: only when the code names it a bias.
        if weight is not None and "bias" in ctx.code(bias).lower() and not isinstance(bias, cst.BinaryOperation):
            linear = ctx.ref("torch.nn.functional.linear")
            return ctx.parse(f"{linear}({a}, {ctx.code(as_operand(weight))}, {ctx.code(bias)})")
        return None


def _named_bias(node: cst.BaseExpression) -> bool:
    """``b``, ``bias``, ``self.bias``, ``self.proj_bias``: the code calls it a bias."""
    name = node.attr.value if isinstance(node, cst.Attribute) else node.value if isinstance(node, cst.Name) else ""
    return name == "b" or "bias" in name.lower()
