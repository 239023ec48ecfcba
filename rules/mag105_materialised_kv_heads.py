from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext

_SDPA = "torch.nn.functional.scaled_dot_product_attention"


class MaterialisedKvHeads(Rule):
    """Key/value heads copied with ``repeat_interleave`` or ``expand().reshape()`` before attention.

    Grouped-query attention shares each K/V head among several query heads.
    Repeating K and V to the query head count writes ``n_rep`` copies of both
    tensors on every call (and for every cached token during generation);
    ``scaled_dot_product_attention(..., enable_gqa=True)`` (PyTorch >= 2.5)
    reads the shared heads directly. Megatron-LM issue 543 (a redundant
    ``repeat_interleave``) cost 6.7% energy in the Magneton study.

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html,
    https://github.com/NVIDIA/Megatron-LM/issues/543, arXiv 2305.13245 (GQA).
    """

    id = "MAG105"
    name = "materialised-kv-heads"
    category = "Redundant computation"
    message = "K/V heads are copied n_rep times before attention; SDPA's enable_gqa=True reads them shared"
    suggestion = "pass the un-repeated k and v with scaled_dot_product_attention(q, k, v, enable_gqa=True)"
    needles = ("scaled_dot_product_attention",)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch.nn.functional as F\ny = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)\n"),
        Valid(
            "import torch\nimport torch.nn.functional as F\nidx = torch.repeat_interleave(x, 2)\n"
            "y = F.scaled_dot_product_attention(q, k, v)\n",
            why="the repeated tensor does not feed attention",
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
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
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


def _repeats_heads(ctx: SourceContext, node: cst.CSTNode | None) -> bool:
    if not isinstance(node, cst.Call):
        return False
    if ctx.is_call(node, "torch.repeat_interleave") or ctx.method_receiver(node, "repeat_interleave") is not None:
        return True
    func = node.func
    if isinstance(func, cst.Name) and func.value == "repeat_kv":  # the Llama helper, defined in the same file
        return True
    # x.expand(...).reshape(...) / .contiguous(): a broadcast made real
    inner = ctx.method_receiver(node, "reshape", "contiguous", "flatten")
    return inner is not None and ctx.method_receiver(inner, "expand") is not None
