from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class ZeroGradKeepsTensors(Rule):
    """``zero_grad(set_to_none=False)``: every gradient is overwritten with zeros each step.

    Writing zeros is a full pass over every parameter's gradient, and the next
    backward then accumulates (reads and writes) into them. With
    ``set_to_none=True`` (the default since PyTorch 2.0) the gradients are
    dropped and the next backward writes them fresh. The only behavioural
    difference: code that reads ``.grad`` between ``zero_grad`` and ``backward``
    sees ``None`` instead of zeros.

    References: https://pytorch.org/docs/stable/generated/torch.optim.Optimizer.zero_grad.html,
    https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html (use parameter.grad = None).
    """

    id = "MAG306"
    name = "zero-grad-keeps-tensors"
    category = "Redundant computation"
    message = "zero_grad(set_to_none=False) writes zeros into every gradient each step"
    suggestion = "zero_grad() (set_to_none=True is the default)"
    fixable = True
    needles = ("zero_grad",)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\noptimizer.zero_grad()\n"),
        Valid("import torch\noptimizer.zero_grad(set_to_none=True)\n"),
    )
    INVALID = (
        Invalid(
            "import torch\noptimizer.zero_grad(set_to_none=False)\n",
            expected_fix="import torch\noptimizer.zero_grad()\n",
            line=2,
        ),
        Invalid("import torch\nmodel.zero_grad(False)\n", expected_fix="import torch\nmodel.zero_grad()\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if ctx.method_receiver(node, "zero_grad") is None or not isinstance(node, cst.Call) or len(node.args) != 1:
            return
        flag = ctx.arg(node, 0, "set_to_none")
        if isinstance(flag, cst.Name) and flag.value == "False":
            yield SourceHit(node, replacement=node.with_changes(args=[]))
