from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import walk
from magneton.rules.source import SourceContext


class HostSyncPerElement(Rule):
    """``.item()``, ``.tolist()``, ``.cpu()`` or ``.numpy()`` on one element at a time inside a loop.

    Each call copies to the host and, on a GPU, waits for all queued work to
    finish: the device idles (still drawing power) between tiny transfers, and
    the loop runs in Python. Convert the whole tensor once before the loop (one
    transfer), or keep the computation on the device.

    References: https://pytorch.org/docs/stable/generated/torch.Tensor.item.html,
    https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html (avoid unnecessary CPU-GPU synchronization).
    """

    id = "MAG109"
    name = "host-sync-per-element"
    category = "API misuse"
    message = "one host transfer (and device sync) per element inside a loop"
    suggestion = "convert once before the loop: values = x.tolist() (or x.cpu()), then index the result"
    needles = (".item(", ".tolist(", ".cpu(", ".numpy(")
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\nvalues = x.tolist()\nfor v in values:\n    print(v)\n"),
        Valid(
            "import torch\nfor batch in loader:\n    loss = step(batch)\n    print(loss.item())\n",
            why="one sync per step",
        ),
        Valid(
            "import torch\nfor out in outputs:\n    ids = out['tokens'][0].tolist()\n",
            why="a whole row converted once per item: the index does not follow the loop",
        ),
        Valid(
            "import torch\nout = [v[i].cpu() for v, i in zip(values, idxs)]\n",
            why="a different tensor each time: nothing to convert once",
        ),
    )
    INVALID = (
        Invalid("import torch\nfor i in range(len(x)):\n    total += x[i].item()\n", line=3),
        Invalid("import torch\nids = [scores[b, 0].cpu() for b in range(n)]\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        receiver = ctx.method_receiver(node, "item", "tolist", "cpu", "numpy")
        if receiver is None or not isinstance(node, cst.Call) or node.args:
            return
        if not isinstance(receiver, cst.Subscript) or not ctx.in_loop():
            return
        # Element by element: the index follows the loop (x[i] in `for i ...`), not a fixed x[0] per iteration.
        loop_names = _loop_targets(ctx)
        index_names = {n.value for e in receiver.slice for n in walk(e) if isinstance(n, cst.Name)}
        indexed = {n.value for n in walk(receiver.value) if isinstance(n, cst.Name)}
        # The indexed tensor must be the same each time (else there is no "whole tensor" to convert once).
        if loop_names & index_names and not loop_names & indexed:
            yield SourceHit(node)


def _loop_targets(ctx: SourceContext) -> set[str]:
    names: set[str] = set()
    for ancestor in reversed(ctx.stack):
        if isinstance(ancestor, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
            break
        targets: list[cst.CSTNode] = []
        if isinstance(ancestor, cst.For):
            targets = [ancestor.target]
        elif isinstance(ancestor, (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
            loop: cst.CompFor | None = ancestor.for_in
            while loop is not None:
                targets.append(loop.target)
                loop = loop.inner_for_in
        for target in targets:
            names |= {n.value for n in walk(target) if isinstance(n, cst.Name)}
    return names
