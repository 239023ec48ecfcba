from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import as_operand, full_slice
from magneton.rules.source import SourceContext


class LogitsForEveryPosition(Rule):
    """The LM head computes logits for every position, and only the last one is used.

    For a vocabulary of V tokens and a sequence of T positions the head is a
    (T x hidden) @ (hidden x V) matmul, often the largest in the model; slicing
    the result to the last position throws (T-1)/T of it away. Slice the hidden
    states first: the head is per-position, so the result is identical. (Hugging
    Face models expose the same idea as ``logits_to_keep``.) Listed as a new
    case in the Magneton study.

    References: https://huggingface.co/docs/transformers/main/en/main_classes/text_generation,
    arXiv 2512.08365.
    """

    id = "MAG112"
    name = "logits-for-every-position"
    category = "Redundant computation"
    message = "logits computed for every position, but only the last one is used"
    suggestion = "apply the head to the last position only: lm_head(hidden[:, -1, :])"
    fixable = True
    needles = (("lm_head", "-1"), ("linear(", "-1"))
    node_types = (cst.Subscript,)
    VALID = (
        Valid("import torch\nlogits = self.lm_head(h[:, -1, :])\n"),
        Valid("import torch\nlogits = self.lm_head(h)\n", why="every position is used"),
        Valid("import torch\nout = model(x)[:, -1, :]\n", why="a whole model is not per-position"),
    )
    INVALID = (
        Invalid(
            "import torch\nnext_logits = self.lm_head(hidden)[:, -1, :]\n",
            expected_fix="import torch\nnext_logits = self.lm_head(hidden[:, -1, :])\n",
            line=2,
        ),
        Invalid(
            "import torch.nn.functional as F\nlast = F.linear(h, w)[..., -1, :]\n",
            expected_fix="import torch.nn.functional as F\nlast = F.linear(h[..., -1, :], w)\n",
        ),
        Invalid("import torch\nnext_logits = lm_head(hidden)[:, -1]\n"),
        Invalid(
            "import torch\nlogits = self.lm_head(h + pos)[:, -1, :]\n",
            expected_fix="import torch\nlogits = self.lm_head((h + pos)[:, -1, :])\n",
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.Subscript)
        call = node.value
        if not isinstance(call, cst.Call) or not call.args or call.args[0].keyword is not None:
            return
        is_head = ctx.is_call(call, "torch.nn.functional.linear") or _called_name(call).endswith("lm_head")
        if not is_head or not _selects_last_position(ctx, node):
            return
        replacement = None
        if full_slice(node.slice[-1]):  # the vocabulary axis untouched: moving the slice inward is exact
            hidden = ctx.code(as_operand(call.args[0].value))
            index = ctx.code(node).removeprefix(ctx.code(call))
            first = call.args[0].with_changes(value=ctx.parse(f"{hidden}{index}"))
            replacement = call.with_changes(args=[first, *call.args[1:]])
        yield SourceHit(node, replacement=replacement)


def _called_name(call: cst.Call) -> str:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return func.value if isinstance(func, cst.Name) else ""


def _selects_last_position(ctx: SourceContext, node: cst.Subscript) -> bool:
    """``[:, -1, :]``, ``[..., -1, :]``, ``[:, -1]``: one integer index -1, every other axis whole."""
    elements = node.slice
    if len(elements) < 2:
        return False
    minus_one = [e for e in elements if isinstance(e.slice, cst.Index) and ctx.number(e.slice.value) == -1]
    others = [e for e in elements if e not in minus_one]
    return len(minus_one) == 1 and all(full_slice(e) for e in others)
