from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import matmul_operands, softmax_parts, transposed_last_two
from magneton.rules.source import SourceContext


class HandwrittenAttention(Rule):
    """Attention written as matmul, scale, softmax and matmul instead of ``scaled_dot_product_attention``.

    The hand-written form materialises the full (sequence x sequence) score matrix
    and reads and writes it three or four times (scale, mask, softmax, second
    matmul). ``torch.nn.functional.scaled_dot_product_attention`` dispatches to
    fused kernels (FlashAttention, memory-efficient attention, or a fused CPU
    kernel) that never store the scores. The vLLM and Hugging Face cases in the
    Magneton study (vLLM 9471, "default prefill attention") are of this kind.

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html,
    https://pytorch.org/tutorials/intermediate/scaled_dot_product_attention_tutorial.html, arXiv 2512.08365.
    """

    id = "MAG101"
    name = "handwritten-attention"
    category = "API misuse"
    message = "attention written by hand (matmul, softmax, matmul); SDPA runs it as one fused kernel"
    suggestion = "torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=..., scale=...)"
    fixable = True
    needles = ("softmax",)
    node_types = (cst.BinaryOperation, cst.Call)
    VALID = (
        Valid("import torch.nn.functional as F\ny = F.scaled_dot_product_attention(q, k, v)\n"),
        Valid(
            "import torch\ny = torch.softmax(logits, dim=-1) @ table\n", why="softmax of a non-matmul: not attention"
        ),
        Valid(
            "import torch\np = torch.softmax(q @ k.transpose(-2, -1), dim=-1)\n",
            why="probabilities returned, no second matmul",
        ),
        Valid(
            "import torch\n\n\ndef f(self, q, k):\n    kernel = torch.softmax(q @ k.transpose(-1, -2), dim=-1)\n"
            "    return torch.matmul(kernel, self.iterative_inv(kernel))\n",
            why="Nystromformer's kernel times a computed inverse: not attention over values",
        ),
    )
    INVALID = (
        Invalid(
            "import math\nimport torch\n\n\ndef attend(q, k, v):\n"
            "    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1) @ v\n",
            expected_fix="import math\nimport torch\n\n\ndef attend(q, k, v):\n"
            "    return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1 / (math.sqrt(q.size(-1))))\n",
            line=6,
        ),
        Invalid(
            "import torch as t\nimport torch.nn.functional as F\n\n\ndef attend(q, k, v, scale):\n"
            "    weights = F.softmax(t.matmul(q, k.mT) * scale, dim=-1)\n    return weights @ v\n",
            line=7,
        ),
        Invalid(
            "import torch\n\n\ndef attend(q, k, v, mask):\n    scores = q @ k.transpose(-1, -2) / 8.0\n"
            "    scores = scores + mask\n    return scores.softmax(-1).matmul(v)\n",
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        operands = matmul_operands(ctx, node)
        if operands is None:
            return
        probabilities, values = operands
        if _computed_elsewhere(ctx, values):
            return  # softmax(...) @ f(...): e.g. Nystrom's kernel @ pinv(kernel) is not attention over values
        soft = softmax_parts(ctx, ctx.resolve(probabilities))
        if soft is None or (soft[1] is not None and ctx.number(soft[1]) != -1):
            return
        if _unscale(ctx, soft[0], follow=True) is None:
            return
        yield SourceHit(node, replacement=self._fix(ctx, probabilities, values))

    @staticmethod
    def _fix(ctx: SourceContext, probabilities: cst.BaseExpression, values: cst.BaseExpression) -> cst.CSTNode | None:
        """Only the whole-in-one-expression form without a mask is rewritten; the rest is flagged."""
        soft = softmax_parts(ctx, probabilities)
        if soft is None:
            return None
        direct = _unscale(ctx, soft[0], follow=False)
        if direct is None or direct[1] == "mask":
            return None
        qk = matmul_operands(ctx, direct[0])
        k = transposed_last_two(ctx, qk[1]) if qk is not None else None
        if qk is None or k is None:
            return None
        sdpa = ctx.ref("torch.nn.functional.scaled_dot_product_attention")
        scale = "1.0" if direct[1] is None else direct[1]
        return ctx.parse(f"{sdpa}({ctx.code(qk[0])}, {ctx.code(k)}, {ctx.code(values)}, scale={scale})")


def _unscale(
    ctx: SourceContext, node: cst.BaseExpression | None, follow: bool
) -> tuple[cst.BaseExpression, str | None] | None:
    """Peel ``/ s``, ``* s`` and ``+ mask`` off the scores: (the q @ k matmul, the scale as code, or "mask")."""
    if follow:
        node = ctx.resolve(node)
    if node is None:
        return None
    if matmul_operands(ctx, node) is not None:
        return node, None
    if not isinstance(node, cst.BinaryOperation):
        return None
    if isinstance(node.operator, cst.Divide):
        inner = _unscale(ctx, node.left, follow)
        if inner is None:
            return None
        return inner[0], "mask" if inner[1] else f"1 / ({ctx.code(node.right)})"
    if isinstance(node.operator, cst.Multiply):
        for raw, factor in ((node.left, node.right), (node.right, node.left)):
            inner = _unscale(ctx, raw, follow)
            if inner is not None:
                return inner[0], "mask" if inner[1] else ctx.code(factor)
        return None
    if isinstance(node.operator, cst.Add):
        inner = _unscale(ctx, node.left, follow)
        return (inner[0], "mask") if inner is not None else None
    return None


def _computed_elsewhere(ctx: SourceContext, values: cst.BaseExpression) -> bool:
    """The right operand is the result of a function (not a tensor, its view or its method)."""
    if not isinstance(values, cst.Call):
        return False
    func = values.func
    if isinstance(func, cst.Name):
        return True
    return isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self"
