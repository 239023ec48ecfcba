from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext

_SPLITS = ("split", "chunk", "tensor_split", "unbind", "split_with_sizes")


class CatThenSplit(Rule):
    """Tensors concatenated and immediately split again.

    The concatenation copies every input into a new tensor just so a split can
    hand back views of it. When the pieces are only used separately (or go
    through per-piece ops), keep them separate. diffusers issue 12131 (a needless
    concat/split) cost 6.1% energy in the Magneton study. The finding points at
    the concatenation: it is the copy that costs (the split only makes views).

    References: https://pytorch.org/docs/stable/generated/torch.split.html,
    https://github.com/huggingface/diffusers/issues/12131, arXiv 2512.08365.
    """

    id = "MAG121"
    name = "cat-then-split"
    category = "Redundant computation"
    message = "concatenation followed directly by a split: a copy whose only use is being cut up again"
    suggestion = "keep the tensors separate (or run the shared op on each piece)"
    needles = tuple((c, s) for c in ("cat(", "concat(", "concatenate(") for s in ("split(", "chunk(", "unbind("))
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\nx = torch.cat([a, b])\ny = model(x)\nu, v = y.split(2)\n", why="the op runs on the whole"),
        Valid("import torch\nu, v = x.split(2)\n"),
    )
    INVALID = (
        Invalid("import torch\nu, v = torch.cat([a, b], dim=0).split([2, 3])\n", line=2),
        Invalid(
            "import torch\n\n\ndef f(a, b):\n    both = torch.cat((a, b), 1)\n    return torch.chunk(both, 2, dim=1)\n",
            line=5,
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        name = ctx.call_name(node)
        if name is not None and name.startswith("torch.") and name[6:] in _SPLITS:
            tensor = ctx.arg(node, 0, "input")  # type: ignore[arg-type]
        else:
            tensor = ctx.method_receiver(node, *_SPLITS)
        joined = ctx.resolve(tensor)
        if joined is not None and ctx.is_call(joined, "torch.cat", "torch.concat", "torch.concatenate"):
            yield SourceHit(joined)
