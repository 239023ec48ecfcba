from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import full_slice, torch_factory
from magneton.rules.source import SourceContext

_EMPTY = {"zeros": "empty", "ones": "empty", "zeros_like": "empty_like", "ones_like": "empty_like"}
_FILLS = ("copy_", "fill_", "normal_", "uniform_", "zero_", "random_", "bernoulli_", "exponential_")


class ZerosThenOverwritten(Rule):
    """A tensor filled with zeros (or ones) and then completely overwritten by the next statement.

    The fill writes the whole tensor once for nothing; ``torch.empty`` allocates
    without writing. The overwrite must cover the whole tensor (``x[:] = ...``,
    ``x.copy_(...)``, ``x.fill_(...)``, ``out=x``) for the change to be exact.

    References: https://pytorch.org/docs/stable/generated/torch.empty.html.
    """

    id = "MAG119"
    name = "zeros-then-overwritten"
    category = "Redundant computation"
    message = "the tensor is filled and then entirely overwritten; torch.empty skips the fill"
    suggestion = "torch.empty(...) / torch.empty_like(...)"
    fixable = True
    needles = ("zeros(", "ones(", "zeros_like(", "ones_like(")
    node_types = (cst.IndentedBlock, cst.Module)
    VALID = (
        Valid("import torch\nbuf = torch.empty(4)\nbuf.copy_(src)\n"),
        Valid("import torch\nbuf = torch.zeros(4)\nbuf[:2] = src\n", why="a partial write keeps some zeros"),
        Valid("import torch\nbuf = torch.zeros(4)\nbuf += src\n", why="the zeros are read"),
    )
    INVALID = (
        Invalid(
            "import torch\nbuf = torch.zeros(4, 4)\nbuf.copy_(src)\n",
            expected_fix="import torch\nbuf = torch.empty(4, 4)\nbuf.copy_(src)\n",
            line=2,
        ),
        Invalid(
            "import torch\n\n\ndef f(x):\n    out = torch.zeros_like(x)\n    out[...] = x * 2\n    return out\n",
            expected_fix="import torch\n\n\ndef f(x):\n    out = torch.empty_like(x)\n"
            "    out[...] = x * 2\n    return out\n",
        ),
        Invalid(
            "import torch\nres = torch.zeros(n, m)\ntorch.matmul(a, b, out=res)\n",
            expected_fix="import torch\nres = torch.empty(n, m)\ntorch.matmul(a, b, out=res)\n",
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        body: Sequence[cst.CSTNode] = node.body  # type: ignore[attr-defined]
        for first, second in zip(body, body[1:], strict=False):
            created = _created(ctx, first)
            if created is None:
                continue
            name, call, factory = created
            if _overwrites(ctx, second, name):
                func = ctx.code(call.func)
                new_func = func[: -len(factory)] + _EMPTY[factory] if func.endswith(factory) else None
                if new_func is None:
                    new_func = ctx.ref(f"torch.{_EMPTY[factory]}")
                yield SourceHit(call, replacement=call.with_changes(func=ctx.parse(new_func)))


def _created(ctx: SourceContext, statement: cst.CSTNode) -> tuple[str, cst.Call, str] | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    if not isinstance(assign, cst.Assign) or len(assign.targets) != 1:
        return None
    target = assign.targets[0].target
    factory = torch_factory(ctx, assign.value, tuple(_EMPTY))
    if not isinstance(target, cst.Name) or factory is None:
        return None
    assert isinstance(assign.value, cst.Call)
    return target.value, assign.value, factory


def _overwrites(ctx: SourceContext, statement: cst.CSTNode, name: str) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        if (
            isinstance(target, cst.Subscript)
            and isinstance(target.value, cst.Name)
            and target.value.value == name
            and all(full_slice(element) for element in target.slice)
        ):
            return not _reads(small.value, name)
        return False
    if not isinstance(small, cst.Expr) or not isinstance(small.value, cst.Call):
        return False
    call = small.value
    receiver = ctx.method_receiver(call, *_FILLS)
    if isinstance(receiver, cst.Name) and receiver.value == name:
        return not any(_reads(a.value, name) for a in call.args)
    out = ctx.keywords(call).get("out")
    if isinstance(out, cst.Name) and out.value == name:
        return not any(_reads(a.value, name) for a in call.args if a.keyword is None)
    return False


def _reads(node: cst.CSTNode, name: str) -> bool:
    from magneton.rules.patterns import walk

    return any(isinstance(n, cst.Name) and n.value == name for n in walk(node))
