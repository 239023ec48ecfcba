"""Small libcst matchers shared by catalog rules (softmax calls, matmuls, transposes, factories)."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.source import SourceContext, child_nodes

SOFTMAX = ("torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax")
LOG_SOFTMAX = ("torch.log_softmax", "torch.nn.functional.log_softmax", "torch.special.log_softmax")
MATMUL = ("torch.matmul", "torch.mm", "torch.bmm")
FACTORIES = (
    "zeros",
    "ones",
    "empty",
    "full",
    "rand",
    "randn",
    "randint",
    "arange",
    "tensor",
    "eye",
    "linspace",
    "logspace",
)
FRESH_RESULT = FACTORIES + (
    "cat",
    "stack",
    "matmul",
    "mm",
    "bmm",
    "zeros_like",
    "ones_like",
    "empty_like",
    "full_like",
    "rand_like",
    "randn_like",
)


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """``node`` and all its descendants, depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(child_nodes(current)))


def softmax_parts(ctx: SourceContext, node: cst.CSTNode | None) -> tuple[cst.BaseExpression, cst.CSTNode | None] | None:
    """(input, dim) of ``torch.softmax(x, dim)``, ``F.softmax(x, dim=...)`` or ``x.softmax(dim)``."""
    if not isinstance(node, cst.Call):
        return None
    if ctx.is_call(node, *SOFTMAX):
        value = ctx.arg(node, 0, "input")
        return (value, ctx.arg(node, 1, "dim")) if value is not None else None
    receiver = ctx.method_receiver(node, "softmax")
    if receiver is not None:
        return receiver, ctx.arg(node, 0, "dim")
    return None


def matmul_operands(
    ctx: SourceContext, node: cst.CSTNode | None
) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
    """(a, b) of ``a @ b``, ``torch.matmul(a, b)``, ``torch.mm``, ``torch.bmm`` or ``a.matmul(b)``."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply):
        return node.left, node.right
    if isinstance(node, cst.Call):
        if ctx.is_call(node, *MATMUL):
            a, b = ctx.arg(node, 0, "input"), ctx.arg(node, 1, "other") or ctx.arg(node, 1, "mat2")
            return (a, b) if a is not None and b is not None else None
        receiver = ctx.method_receiver(node, "matmul", "mm", "bmm")
        if receiver is not None:
            other = ctx.arg(node, 0)
            return (receiver, other) if other is not None else None
    return None


def transposed_last_two(ctx: SourceContext, node: cst.CSTNode | None) -> cst.BaseExpression | None:
    """X for ``X.transpose(-2, -1)`` (either order), ``X.mT``, ``X.T``, ``X.t()``, ``torch.transpose(X, -2, -1)``."""
    if isinstance(node, cst.Attribute) and node.attr.value in ("mT", "T") and ctx.qualified_name(node) is None:
        return node.value
    if not isinstance(node, cst.Call):
        return None
    receiver = ctx.method_receiver(node, "transpose", "t")
    if receiver is not None:
        if node.func.attr.value == "t":  # type: ignore[attr-defined]
            return receiver if not node.args else None
        dims = {ctx.number(ctx.arg(node, 0)), ctx.number(ctx.arg(node, 1))}
        return receiver if dims == {-2.0, -1.0} else None
    if ctx.is_call(node, "torch.transpose"):
        dims = {ctx.number(ctx.arg(node, 1)), ctx.number(ctx.arg(node, 2))}
        return ctx.arg(node, 0) if dims == {-2.0, -1.0} else None
    return None


def torch_factory(ctx: SourceContext, node: cst.CSTNode | None, names: tuple[str, ...] = FACTORIES) -> str | None:
    """The factory's short name (``zeros``) when ``node`` calls ``torch.<name>``."""
    name = ctx.call_name(node) if isinstance(node, cst.Call) else None
    if name and name.startswith("torch.") and name.count(".") == 1 and name[6:] in names:
        return name[6:]
    return None


def as_operand(expression: cst.BaseExpression) -> cst.BaseExpression:
    """Parenthesise an operator expression that is about to become a receiver or operand."""
    needs = (cst.BinaryOperation, cst.UnaryOperation, cst.BooleanOperation, cst.Comparison, cst.IfExp, cst.Lambda)
    if isinstance(expression, needs) and not expression.lpar:
        return expression.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return expression


def rebuild_call(
    ctx: SourceContext,
    call: cst.Call,
    func: str | None = None,
    add: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    first: str | None = None,
) -> cst.BaseExpression:
    """``call`` as new code: another function, keyword arguments added or dropped, the first argument replaced."""
    parts = []
    for index, argument in enumerate(call.args):
        if argument.keyword is not None and argument.keyword.value in drop:
            continue
        text = ctx.code(argument.value)
        if index == 0 and first is not None and argument.keyword is None:
            text = first
        star = argument.star if isinstance(argument.star, str) else ""
        parts.append(f"{argument.keyword.value}={text}" if argument.keyword is not None else f"{star}{text}")
    for keyword, text in (add or {}).items():
        parts.append(f"{keyword}={text}")
    return cst.parse_expression(f"{func or ctx.code(call.func)}({', '.join(parts)})")


def is_literal(node: cst.CSTNode | None, value: float) -> bool:
    return SourceContext.number(node) == value


def full_slice(node: cst.SubscriptElement) -> bool:
    """``:`` with no bounds, or ``...``."""
    inner = node.slice
    if isinstance(inner, cst.Slice):
        return inner.lower is None and inner.upper is None and inner.step is None
    return isinstance(inner, cst.Index) and isinstance(inner.value, cst.Ellipsis)


__all__ = [
    "FACTORIES",
    "FRESH_RESULT",
    "LOG_SOFTMAX",
    "MATMUL",
    "SOFTMAX",
    "as_operand",
    "full_slice",
    "is_literal",
    "matmul_operands",
    "rebuild_call",
    "softmax_parts",
    "torch_factory",
    "transposed_last_two",
    "walk",
]
