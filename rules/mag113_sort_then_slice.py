from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class SortThenSlice(Rule):
    """A full sort followed by taking the first k elements, where ``torch.topk`` fits.

    Sorting is O(n log n) over the whole axis and writes every element (and
    index); ``topk`` selects k elements in O(n) (partial selection) and writes
    only k. SGLang issue 5128 (an inefficient top-k API) cost 2.5% energy in the
    Magneton study.

    References: https://pytorch.org/docs/stable/generated/torch.topk.html,
    https://github.com/sgl-project/sglang/issues/5128, arXiv 2512.08365.
    """

    id = "MAG113"
    name = "sort-then-slice"
    category = "API misuse"
    message = "a full sort to keep the first k elements; torch.topk selects them without sorting everything"
    suggestion = "torch.topk(x, k, dim=-1) (largest=False for ascending)"
    fixable = True
    needles = ("sort(",)
    node_types = (cst.Subscript,)
    VALID = (
        Valid("import torch\nv = torch.topk(x, 5).values\n"),
        Valid("import torch\nv = torch.sort(x, descending=True).values\n", why="every element is kept"),
        Valid("import torch\nv = torch.sort(x, dim=0).values[..., :5]\n", why="the slice is not on the sorted axis"),
        Valid("import torch\nv = torch.sort(x, stable=True).values[..., :5]\n", why="topk is not stable"),
    )
    INVALID = (
        Invalid(
            "import torch\ntop = torch.sort(x, descending=True).values[..., :k]\n",
            expected_fix="import torch\ntop = torch.topk(x, k, dim=-1).values\n",
            line=2,
        ),
        Invalid(
            "import torch\nidx = torch.argsort(scores, dim=-1, descending=True)[..., :10]\n",
            expected_fix="import torch\nidx = torch.topk(scores, 10, dim=-1).indices\n",
        ),
        Invalid(
            "import torch\nsmallest = logits.sort()[0][..., :3]\n",
            expected_fix="import torch\nsmallest = torch.topk(logits, 3, dim=-1, largest=False).values\n",
        ),
        Invalid("import torch\ntop = torch.sort(x, descending=True).values[:, :k]\n"),
        Invalid(
            "import torch\n\n\ndef top(logits, k):\n    values, indices = torch.sort(logits, dim=-1, descending=True)\n"
            "    return values[:, :k], indices[:, :k]\n",
            line=5,
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.Subscript)
        k, exact = _leading_slice(node)
        if k is None:
            return
        parts = _sorted_source(ctx, node.value)
        if parts is None:
            return
        tensor, call, field = parts
        keywords = ctx.keywords(call)
        if "stable" in keywords:
            return
        dim = keywords.get("dim") or (ctx.arg(call, 1) if ctx.call_name(call) else ctx.arg(call, 0))
        if dim is not None and ctx.number(dim) != -1:
            return
        descending = keywords.get("descending")
        if descending is not None and not isinstance(descending, cst.Name):
            return
        largest = isinstance(descending, cst.Name) and descending.value == "True"
        if ctx.unpacked_from(node.value) is not None:
            yield SourceHit(call)  # values, indices = sort(...): point at the sort; the fix needs both uses
            return
        replacement = None
        if exact:
            topk = ctx.ref("torch.topk")
            flag = "" if largest else ", largest=False"
            replacement = ctx.parse(f"{topk}({ctx.code(tensor)}, {ctx.code(k)}, dim=-1{flag}).{field}")
        yield SourceHit(node, replacement=replacement)


def _leading_slice(node: cst.Subscript) -> tuple[cst.BaseExpression | None, bool]:
    """(k, exact) for ``[..., :k]`` (exact) or ``[:, :k]`` (flag only); (None, False) otherwise."""
    elements = node.slice
    last = elements[-1].slice
    if not isinstance(last, cst.Slice) or last.lower is not None or last.step is not None or last.upper is None:
        return None, False
    first = elements[0].slice
    if len(elements) == 2 and isinstance(first, cst.Index) and isinstance(first.value, cst.Ellipsis):
        return last.upper, True
    if len(elements) >= 2 and all(isinstance(e.slice, cst.Slice) and e.slice.upper is None for e in elements[:-1]):
        return last.upper, False
    return None, False


def _sorted_source(ctx: SourceContext, node: cst.BaseExpression) -> tuple[cst.BaseExpression, cst.Call, str] | None:
    """(tensor, sort call, "values"|"indices") for ``sort(x).values``, ``sort(x)[0]``, ``argsort(x)``."""
    field = None
    unpacked = ctx.unpacked_from(node)
    if unpacked is not None and unpacked[1] in (0, 1):  # values, indices = torch.sort(...)
        field, node = ("values" if unpacked[1] == 0 else "indices"), unpacked[0]
    elif isinstance(node, cst.Attribute) and node.attr.value in ("values", "indices"):
        field, node = node.attr.value, node.value
    elif isinstance(node, cst.Subscript) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
        index = ctx.number(node.slice[0].slice.value)
        if index in (0.0, 1.0):
            field, node = ("values" if index == 0 else "indices"), node.value
    if not isinstance(node, cst.Call):
        return None
    if field is None:
        if ctx.is_call(node, "torch.argsort"):
            tensor = ctx.arg(node, 0, "input")
            return (tensor, node, "indices") if tensor is not None else None
        receiver = ctx.method_receiver(node, "argsort")
        return (receiver, node, "indices") if receiver is not None else None
    if ctx.is_call(node, "torch.sort"):
        tensor = ctx.arg(node, 0, "input")
        return (tensor, node, field) if tensor is not None else None
    receiver = ctx.method_receiver(node, "sort")
    return (receiver, node, field) if receiver is not None else None
