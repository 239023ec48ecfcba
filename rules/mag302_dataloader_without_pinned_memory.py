from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import rebuild_call
from magneton.rules.source import SourceContext

DATALOADER = "torch.utils.data.DataLoader"


class DataLoaderWithoutPinnedMemory(Rule):
    """A ``DataLoader`` feeding a CUDA model without ``pin_memory=True``.

    Copies from pageable host memory go through a staging buffer and block the
    host; from pinned memory they are direct DMA and can overlap with compute
    (``.to(device, non_blocking=True)``). The rule fires only in files that move
    data to CUDA; the batches are the same either way.

    References: https://pytorch.org/docs/stable/data.html#memory-pinning,
    https://pytorch.org/tutorials/intermediate/pinmem_nonblock.html.
    """

    id = "MAG302"
    name = "dataloader-without-pinned-memory"
    category = "Misconfiguration"
    message = "DataLoader for a CUDA model without pin_memory=True: host-to-device copies are staged and blocking"
    suggestion = "DataLoader(..., pin_memory=True) and .to(device, non_blocking=True)"
    fixable = True
    needles = ("DataLoader",)
    node_types = (cst.Call,)
    VALID = (
        Valid(
            "from torch.utils.data import DataLoader\nloader = DataLoader(ds, num_workers=2)\n", why="no CUDA in file"
        ),
        Valid(
            "from torch.utils.data import DataLoader\nloader = DataLoader(ds, pin_memory=True)\nmodel.cuda()\n",
        ),
        Valid(
            "from torch.utils.data import DataLoader\nloader = DataLoader(ds, pin_memory=False)\nmodel.cuda()\n",
            why="an explicit choice",
        ),
    )
    INVALID = (
        Invalid(
            'from torch.utils.data import DataLoader\nloader = DataLoader(ds, batch_size=8)\nx = x.to("cuda")\n',
            expected_fix="from torch.utils.data import DataLoader\n"
            'loader = DataLoader(ds, batch_size=8, pin_memory=True)\nx = x.to("cuda")\n',
            line=2,
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if not ctx.is_call(node, DATALOADER) or not isinstance(node, cst.Call) or ctx.has_star(node):
            return
        if ctx.arg(node, 8, "pin_memory") is not None:
            return
        text = ctx.text
        if ".cuda(" in text or '"cuda' in text or "'cuda" in text:
            yield SourceHit(node, replacement=rebuild_call(ctx, node, add={"pin_memory": "True"}))
