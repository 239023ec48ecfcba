from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext

DATALOADER = "torch.utils.data.DataLoader"


class DataLoaderWithoutWorkers(Rule):
    """A ``DataLoader`` with the default ``num_workers=0``: loading runs in the training process, serially.

    With no workers, every batch is read, decoded and collated in the main
    process while the accelerator waits (idle power, for nothing). Workers
    prepare the next batches in parallel with the step.

    References: https://pytorch.org/docs/stable/data.html#single-and-multi-process-data-loading,
    https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html (enable async data loading).
    """

    id = "MAG301"
    name = "dataloader-without-workers"
    category = "Misconfiguration"
    message = "DataLoader loads batches in the main process (num_workers=0) while the device waits"
    suggestion = "DataLoader(..., num_workers=N) with N about the number of free CPU cores"
    needles = ("DataLoader",)
    node_types = (cst.Call,)
    VALID = (
        Valid("from torch.utils.data import DataLoader\nloader = DataLoader(ds, batch_size=32, num_workers=4)\n"),
        Valid("from torch.utils.data import DataLoader\nloader = DataLoader(ds, num_workers=args.workers)\n"),
        Valid("from torch.utils.data import DataLoader\nloader = DataLoader(ds, **loader_kwargs)\n", why="maybe set"),
    )
    INVALID = (
        Invalid("from torch.utils.data import DataLoader\nloader = DataLoader(ds, batch_size=32)\n", line=2),
        Invalid("import torch\nloader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=0)\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if not ctx.is_call(node, DATALOADER) or not isinstance(node, cst.Call) or ctx.has_star(node):
            return
        workers = ctx.arg(node, 6, "num_workers")
        if workers is None or ctx.number(workers) == 0:
            yield SourceHit(node)
