from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
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
    )
    INVALID = (
        Invalid("import torch\nfor i in range(len(x)):\n    total += x[i].item()\n", line=3),
        Invalid("import torch\nids = [scores[b, 0].cpu() for b in range(n)]\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        receiver = ctx.method_receiver(node, "item", "tolist", "cpu", "numpy")
        if receiver is None or not isinstance(node, cst.Call) or node.args:
            return
        if isinstance(receiver, cst.Subscript) and ctx.in_loop():
            yield SourceHit(node)
