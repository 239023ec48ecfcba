from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import walk
from magneton.rules.source import SourceContext


class CatInLoop(Rule):
    """A tensor grown with ``torch.cat`` inside a loop.

    Each iteration allocates a new tensor and copies everything accumulated so
    far into it: n iterations copy O(n^2) elements. Collect the pieces in a list
    and concatenate once after the loop (or preallocate and write slices).

    References: https://pytorch.org/docs/stable/generated/torch.cat.html,
    https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html.
    """

    id = "MAG108"
    name = "cat-in-loop"
    category = "Redundant computation"
    message = "torch.cat grows a tensor inside a loop: every iteration copies all earlier pieces"
    suggestion = "append the pieces to a list and call torch.cat once after the loop"
    needles = ("cat(", "concatenate(")
    node_types = (cst.Assign, cst.AugAssign)
    VALID = (
        Valid("import torch\nparts = []\nfor x in xs:\n    parts.append(x)\nout = torch.cat(parts)\n"),
        Valid("import torch\nfor x in xs:\n    y = torch.cat([x, x])\n", why="a fresh tensor each time, nothing grows"),
        Valid(
            "import torch\nfor a, b in pairs:\n    chunk = a[:, 1:]\n    chunk = torch.cat([b, chunk], dim=1)\n",
            why="re-assigned each iteration before the cat: nothing accumulates",
        ),
    )
    INVALID = (
        Invalid("import torch\nout = torch.empty(0)\nfor x in xs:\n    out = torch.cat([out, x])\n", line=4),
        Invalid("import torch as t\nwhile cond:\n    acc = t.cat((acc, step()), dim=1)\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if ctx.enclosing_loop() is None:
            return
        if isinstance(node, cst.Assign):
            if len(node.targets) != 1 or not isinstance(node.targets[0].target, cst.Name):
                return
            target, value = node.targets[0].target.value, node.value
        elif isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name):
            return  # += on a tensor is elementwise, not a concatenation
        else:
            return
        if not ctx.is_call(value, "torch.cat", "torch.concat", "torch.concatenate"):
            return
        assert isinstance(value, cst.Call)
        pieces = ctx.arg(value, 0, "tensors")
        if not isinstance(pieces, (cst.List, cst.Tuple)) or not any(
            isinstance(element.value, cst.Name) and element.value.value == target for element in pieces.elements
        ):
            return
        # Re-assigned elsewhere in the loop (a fresh value each iteration): nothing accumulates.
        loop = ctx.enclosing_loop()
        assert loop is not None
        for inner in walk(loop.body):
            if (
                isinstance(inner, cst.Assign)
                and inner is not node
                and any(isinstance(t.target, cst.Name) and t.target.value == target for t in inner.targets)
            ):
                return
        yield SourceHit(value)
