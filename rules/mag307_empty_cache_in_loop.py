from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class EmptyCacheInLoop(Rule):
    """``torch.cuda.empty_cache()`` called inside a loop.

    It returns the caching allocator's free blocks to the driver, so the next
    iteration has to ``cudaMalloc`` them again (slow, synchronising calls). It
    does not give the program more memory; it only helps other processes.

    References: https://pytorch.org/docs/stable/generated/torch.cuda.empty_cache.html,
    https://pytorch.org/docs/stable/notes/cuda.html#memory-management.
    """

    id = "MAG307"
    name = "empty-cache-in-loop"
    category = "Misconfiguration"
    message = "torch.cuda.empty_cache() in a loop: every iteration re-allocates from the driver"
    suggestion = "remove it (or call it once, outside the loop)"
    needles = ("empty_cache",)
    node_types = (cst.Call,)
    VALID = (Valid("import torch\ntrain()\ntorch.cuda.empty_cache()\n"),)
    INVALID = (Invalid("import torch\nfor batch in loader:\n    step(batch)\n    torch.cuda.empty_cache()\n", line=4),)

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if ctx.is_call(node, "torch.cuda.empty_cache", "torch.cuda.memory.empty_cache") and ctx.in_loop():
            yield SourceHit(node)
