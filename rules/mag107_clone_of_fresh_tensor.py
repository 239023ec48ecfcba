from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import FRESH_RESULT, as_operand, matmul_operands, torch_factory
from magneton.rules.source import SourceContext

_ARITHMETIC = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.MatrixMultiply, cst.Power)


class CloneOfFreshTensor(Rule):
    """``.clone()`` of a tensor that was just created and that nothing else holds.

    A factory call (``torch.zeros``), an arithmetic result or another clone
    already is a new tensor no one else references; cloning it allocates and
    copies it again for nothing.

    References: https://pytorch.org/docs/stable/generated/torch.clone.html.
    """

    id = "MAG107"
    name = "clone-of-fresh-tensor"
    category = "Redundant computation"
    message = "clone() of a freshly created tensor copies it for nothing"
    suggestion = "drop the .clone()"
    fixable = True
    needles = ("clone()",)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\ny = x.clone()\n", why="x may be shared; the copy can be needed"),
        Valid("import torch\ny = x.detach().clone()\n", why="detach() shares storage"),
        Valid("import torch\ny = torch.zeros(3).clone(memory_format=torch.channels_last)\n", why="a layout change"),
    )
    INVALID = (
        Invalid(
            "import torch\ny = torch.zeros(4, 4).clone()\n",
            expected_fix="import torch\ny = torch.zeros(4, 4)\n",
            line=2,
        ),
        Invalid("import torch\ny = (a + b).clone()\n", expected_fix="import torch\ny = (a + b)\n"),
        Invalid("import torch\ny = x.clone().clone()\n", expected_fix="import torch\ny = x.clone()\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        receiver = ctx.method_receiver(node, "clone")
        if receiver is None or not isinstance(node, cst.Call) or node.args:
            return
        fresh = (
            torch_factory(ctx, receiver, FRESH_RESULT) is not None
            or (isinstance(receiver, cst.BinaryOperation) and isinstance(receiver.operator, _ARITHMETIC))
            or (
                isinstance(receiver, cst.Call)
                and ctx.method_receiver(receiver, "clone") is not None
                and not receiver.args
            )
            or (matmul_operands(ctx, receiver) is not None and isinstance(receiver, cst.Call))
        )
        if fresh:
            yield SourceHit(node, replacement=as_operand(receiver))
