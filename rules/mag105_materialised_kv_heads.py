from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import matmul_operands, transposed_last_two
from magneton.rules.source import SourceContext

_SDPA = "torch.nn.functional.scaled_dot_product_attention"


class MaterialisedKvHeads(Rule):
    """Key/value heads copied with ``repeat_interleave`` or ``expand().reshape()`` before attention.

    Grouped-query attention shares each K/V head among several query heads.
    Repeating K and V to the query head count writes ``n_rep`` copies of both
    tensors on every call (and for every cached token during generation);
    ``scaled_dot_product_attention(..., enable_gqa=True)`` (PyTorch >= 2.5)
    reads the shared heads directly. Megatron-LM issue 543 (a redundant
    ``repeat_interleave`` before hand-written attention) cost 6.7% energy in
    the Magneton study. Fires on the SDPA call fed repeated K/V, and, for
    hand-written attention, on the repeat whose result feeds the ``q @ k^T``
    or ``probs @ v`` matmul.

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html,
    https://github.com/NVIDIA/Megatron-LM/issues/543, arXiv 2305.13245 (GQA).
    """

    id = "MAG105"
    name = "materialised-kv-heads"
    category = "Redundant computation"
    message = "K/V heads are copied n_rep times before attention; SDPA's enable_gqa=True reads them shared"
    suggestion = "pass the un-repeated k and v with scaled_dot_product_attention(q, k, v, enable_gqa=True)"
    needles = ("scaled_dot_product_attention", "repeat_interleave", "repeat_kv", "expand(")
    node_types = (cst.Call, cst.BinaryOperation)
    VALID = (
        Valid("import torch.nn.functional as F\ny = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)\n"),
        Valid(
            "import torch\nimport torch.nn.functional as F\nidx = torch.repeat_interleave(x, 2)\n"
            "y = F.scaled_dot_product_attention(q, k, v)\n",
            why="the repeated tensor does not feed attention",
        ),
        Valid(
            "import torch\n\n\ndef f(x, w):\n    idx = torch.arange(4).repeat_interleave(2)\n    return x[idx] @ w\n",
            why="an index repeat, not a head repeat feeding a matmul operand",
        ),
        Valid(
            "import torch\n\n\ndef f(q, k):\n    k = k.repeat_interleave(2)\n    return q @ k\n",
            why="no dim: a flattened repeat, not a repeat of heads",
        ),
    )
    INVALID = (
        Invalid(
            "import torch.nn.functional as F\n\n\ndef attend(q, k, v, n_rep):\n"
            "    k = k.repeat_interleave(n_rep, dim=1)\n    v = v.repeat_interleave(n_rep, dim=1)\n"
            "    return F.scaled_dot_product_attention(q, k, v)\n",
            line=7,
        ),
        Invalid(
            "import torch\nfrom torch.nn.functional import scaled_dot_product_attention as sdpa\n\n\n"
            "def attend(q, k, v, b, h, n, s, d):\n"
            "    k = k[:, :, None].expand(b, h, n, s, d).reshape(b, h * n, s, d)\n"
            "    return sdpa(q, k, v)\n",
        ),
        Invalid(
            "import torch\n\n\ndef attend(q, k, v, n_rep, scale):\n"
            "    k = k.repeat_interleave(n_rep, dim=1)\n    v = v.repeat_interleave(n_rep, dim=1)\n"
            "    probs = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)\n    return probs @ v\n",
            line=5,
        ),
        Invalid(
            "import torch\n\n\ndef attend(q, key, n_rep):\n"
            "    key = torch.repeat_interleave(key, n_rep, dim=2)\n    return torch.matmul(q, key.mT)\n",
            line=5,
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        operands = matmul_operands(ctx, node)
        if operands is not None:
            # hand-written attention: q @ k^T with k repeated, or probs @ v with v repeated; point at the repeat
            right = operands[1]
            repeated = ctx.resolve(transposed_last_two(ctx, right) or right)
            if _repeats_heads(ctx, repeated, need_dim=True) and repeated is not None:
                yield SourceHit(repeated)
            return
        if not ctx.is_call(node, _SDPA):
            return
        assert isinstance(node, cst.Call)
        keywords = ctx.keywords(node)
        if "enable_gqa" in keywords:
            return
        for position, keyword in ((1, "key"), (2, "value")):
            value = ctx.resolve(ctx.arg(node, position, keyword))
            if _repeats_heads(ctx, value):
                yield SourceHit(node)
                return


def _repeats_heads(ctx: SourceContext, node: cst.CSTNode | None, need_dim: bool = False) -> bool:
    """A repeat of heads: ``repeat_interleave`` (along a named dim when ``need_dim``), ``repeat_kv``, expand+reshape."""
    if not isinstance(node, cst.Call):
        return False
    if ctx.is_call(node, "torch.repeat_interleave"):
        return not need_dim or ctx.arg(node, 2, "dim") is not None
    if ctx.method_receiver(node, "repeat_interleave") is not None:
        return not need_dim or ctx.arg(node, 1, "dim") is not None
    func = node.func
    if isinstance(func, cst.Name) and func.value == "repeat_kv":  # the Llama helper, defined in the same file
        return True
    # x.expand(...).reshape(...) / .contiguous(): a broadcast made real
    inner = ctx.method_receiver(node, "reshape", "contiguous", "flatten")
    return inner is not None and ctx.method_receiver(inner, "expand") is not None
