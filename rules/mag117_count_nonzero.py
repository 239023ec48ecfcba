from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class CountNonzero(Rule):
    """Counting non-zeros with a comparison and a sum, or with ``nonzero()``, instead of ``count_nonzero``.

    ``(x != 0).sum()`` writes a whole boolean temporary and reads it back for the
    sum; ``torch.count_nonzero`` counts in one pass. A 0/1 indicator built from
    the comparison (``torch.where(x != 0, ones_like(x), zeros_like(x))``,
    ``(x != 0).float()``) and then summed costs more still: two more full
    tensors. When the indicator is assigned to a name first, the rule flags
    the sum without a fix (the assignment may have other uses). ``len(torch.nonzero(x))`` is
    worse: ``nonzero`` materialises every index (an int64 tensor of ``ndim``
    columns) and, on GPUs, synchronises to learn its size. The TensorFlow
    counterpart (issue 60772) cost 27.8% more energy in the Magneton study.

    References: https://pytorch.org/docs/stable/generated/torch.count_nonzero.html,
    https://github.com/tensorflow/tensorflow/issues/60772, arXiv 2512.08365.
    """

    id = "MAG117"
    name = "count-nonzero"
    category = "API misuse"
    message = "counting non-zeros through a temporary; torch.count_nonzero counts in one pass"
    suggestion = "torch.count_nonzero(x) (or torch.count_nonzero(x, dim=d))"
    fixable = True
    needles = ("!= 0", "!=0", "nonzero", "argwhere")
    node_types = (cst.Call, cst.Subscript)
    VALID = (
        Valid("import torch\nn = torch.count_nonzero(x)\n"),
        Valid("import torch\nn = (x > 0).sum()\n", why="a threshold count is not a non-zero count"),
        Valid("import torch\nn = (x != 0).sum(dim=1, keepdim=True)\n", why="count_nonzero has no keepdim"),
        Valid("import torch\nidx = torch.nonzero(x)\nrows = x[idx[:, 0]]\n", why="the indices are used"),
        Valid(
            "import torch\nn = torch.where(x != 0, w, torch.zeros_like(x)).sum()\n",
            why="a weighted sum, not a count",
        ),
        Valid(
            "import torch\n\n\ndef f(x):\n    flags = (x != 0).float()\n    flags = flags * 2\n"
            "    return flags.sum()\n",
            why="the indicator is changed before the sum",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\nn = (x != 0).sum()\n", expected_fix="import torch\nn = torch.count_nonzero(x)\n", line=2
        ),
        Invalid(
            "import torch as t\nn = t.sum(x != 0, dim=-1)\n",
            expected_fix="import torch as t\nn = t.count_nonzero(x, dim=-1)\n",
        ),
        Invalid(
            "import torch\nn = len(torch.nonzero(mask))\n",
            expected_fix="import torch\nn = int(torch.count_nonzero(mask))\n",
        ),
        Invalid(
            "import torch\nn = torch.nonzero(mask).shape[0]\n",
            expected_fix="import torch\nn = int(torch.count_nonzero(mask))\n",
        ),
        Invalid(
            "import torch\nn = torch.where(x != 0, torch.ones_like(x), torch.zeros_like(x)).sum(dim=-1)\n",
            expected_fix="import torch\nn = torch.count_nonzero(x, dim=-1).to(x.dtype)\n",
        ),
        Invalid(
            "import torch\nn = (x != 0).float().sum()\n",
            expected_fix="import torch\nn = torch.count_nonzero(x).float()\n",
        ),
        Invalid(
            "import torch\nn = (x != 0).int().sum(dim=1)\n",
            expected_fix="import torch\nn = torch.count_nonzero(x, dim=1)\n",
        ),
        Invalid(
            "import torch\n\n\ndef active(x):\n    flags = torch.where(x != 0, 1.0, 0.0)\n"
            "    return flags.sum(dim=1)\n",
            line=6,
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if isinstance(node, cst.Subscript):  # torch.nonzero(x).shape[0]
            if (
                isinstance(node.value, cst.Attribute)
                and node.value.attr.value == "shape"
                and len(node.slice) == 1
                and isinstance(node.slice[0].slice, cst.Index)
                and ctx.number(node.slice[0].slice.value) == 0
            ):
                tensor = self._nonzero_input(node.value.value, ctx)
                if tensor is not None:
                    yield SourceHit(node, replacement=self._int_count(tensor, ctx))
            return
        assert isinstance(node, cst.Call)
        size_of = ctx.method_receiver(node, "size")
        if size_of is not None and len(node.args) == 1 and ctx.number(node.args[0].value) == 0:
            tensor = self._nonzero_input(size_of, ctx)
            if tensor is not None:
                yield SourceHit(node, replacement=self._int_count(tensor, ctx))
            return
        counted = self._comparison_sum(node, ctx)
        if counted is not None:
            tensor, dim, suffix = counted
            extra = f", dim={ctx.code(dim)}" if dim is not None else ""
            replacement = (
                ctx.parse(f"{ctx.ref('torch.count_nonzero')}({ctx.code(tensor)}{extra}){suffix}")
                if suffix is not None
                else None
            )
            yield SourceHit(node, replacement=replacement)
            return
        # len(torch.nonzero(x))
        if ctx.is_call(node, "builtins.len") and len(node.args) == 1:
            inner = node.args[0].value
            tensor = self._nonzero_input(inner, ctx)
            if tensor is not None:
                yield SourceHit(node, replacement=self._int_count(tensor, ctx))

    @staticmethod
    def _nonzero_input(node: cst.CSTNode, ctx: SourceContext) -> cst.BaseExpression | None:
        if (
            isinstance(node, cst.Call)
            and ctx.is_call(node, "torch.nonzero", "torch.argwhere")
            and len(node.args) == 1
            and node.args[0].keyword is None
        ):
            return node.args[0].value
        receiver = ctx.method_receiver(node, "nonzero", "argwhere")
        if receiver is not None and isinstance(node, cst.Call) and not node.args:
            return receiver
        return None

    def _int_count(self, tensor: cst.BaseExpression, ctx: SourceContext) -> cst.BaseExpression:
        return ctx.parse(f"int({ctx.ref('torch.count_nonzero')}({ctx.code(tensor)}))")

    def _comparison_sum(
        self, node: cst.Call, ctx: SourceContext
    ) -> tuple[cst.BaseExpression, cst.BaseExpression | None, str | None] | None:
        """(counted tensor, dim, dtype suffix or None: no fix) for a sum of ``x != 0`` or a 0/1 indicator of it."""
        receiver = ctx.method_receiver(node, "sum")
        if receiver is not None:
            compared, rest = receiver, node.args
        elif ctx.is_call(node, "torch.sum") and node.args and node.args[0].keyword is None:
            compared, rest = node.args[0].value, node.args[1:]
        else:
            return None
        resolved = ctx.resolve(compared) if isinstance(compared, cst.Name) else compared
        indicator = _indicator_of_nonzero(resolved, ctx) if resolved is not None else None
        if indicator is None or any(a.star for a in rest):
            return None
        tensor, suffix = indicator
        if resolved is not compared:
            suffix = None  # through a name: the assignment may have other uses, so flag without a fix
        dim = None
        for argument in rest:
            keyword = argument.keyword.value if argument.keyword else "dim"
            if keyword != "dim" or dim is not None:
                return None  # keepdim, dtype: count_nonzero cannot say the same
            dim = argument.value
        return tensor, dim, suffix


def _not_equal_zero(node: cst.CSTNode, ctx: SourceContext) -> cst.BaseExpression | None:
    if isinstance(node, cst.Comparison) and len(node.comparisons) == 1:
        target = node.comparisons[0]
        if isinstance(target.operator, cst.NotEqual) and ctx.number(target.comparator) == 0:
            return node.left
    return None


_CASTS = ("float", "int", "long", "double", "half", "bfloat16", "to")
_FLOAT_CASTS = ("float", "double", "half", "bfloat16")  # a float sum keeps the cast's dtype; an integer one is int64


def _indicator_of_nonzero(node: cst.CSTNode, ctx: SourceContext) -> tuple[cst.BaseExpression, str | None] | None:
    """(x, dtype suffix) for ``x != 0`` (suffix ""), a cast of it (the cast), or ``torch.where(x != 0, ones_like(x),
    zeros_like(x))`` (``.to(x.dtype)``); the suffix is None when the count's dtype cannot be written back exactly.
    """
    if isinstance(node, cst.Call):
        cast_of = ctx.method_receiver(node, *_CASTS)
        if cast_of is not None:
            tensor = _not_equal_zero(cast_of, ctx)
            if tensor is None:
                return None
            method = node.func.attr.value if isinstance(node.func, cst.Attribute) else ""
            if method in ("int", "long"):
                return tensor, ""  # sum() of an integer tensor is int64, as count_nonzero is
            # .to(...) may name any dtype or device: flag without a fix
            return tensor, (ctx.code(node)[len(ctx.code(cast_of)) :] if method in _FLOAT_CASTS else None)
        if ctx.is_call(node, "torch.where") and len(node.args) == 3 and not any(a.keyword or a.star for a in node.args):
            tensor = _not_equal_zero(node.args[0].value, ctx)
            one, zero = node.args[1].value, node.args[2].value
            if tensor is None or not (_constant_like(one, tensor, 1, ctx) and _constant_like(zero, tensor, 0, ctx)):
                return None
            both_like = isinstance(one, cst.Call) and isinstance(zero, cst.Call)
            return tensor, (f".to({ctx.code(tensor)}.dtype)" if both_like else None)
        return None
    tensor = _not_equal_zero(node, ctx)
    return (tensor, "") if tensor is not None else None


def _constant_like(node: cst.CSTNode, tensor: cst.BaseExpression, value: int, ctx: SourceContext) -> bool:
    if ctx.number(node) == value:
        return True
    factory = "torch.ones_like" if value == 1 else "torch.zeros_like"
    return (
        isinstance(node, cst.Call)
        and ctx.is_call(node, factory)
        and len(node.args) == 1
        and ctx.same(node.args[0].value, tensor)
    )
