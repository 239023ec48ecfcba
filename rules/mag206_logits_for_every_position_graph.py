from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

_HEADS = ("linear", "addmm", "mm", "matmul")


class LogitsForEveryPositionGraph(Rule):
    """A projection computed for every position, of which only one position (the last) is ever read.

    Seen in the graph: the output of a linear layer/matmul is consumed only by a
    ``select``/``slice`` keeping one position along a non-feature axis. The
    projection is per-position, so selecting first gives identical values for
    1/T of the work. For a language model's head this is usually the largest
    matmul (transformers: ``logits_to_keep=1``).

    References: https://huggingface.co/docs/transformers/main/en/main_classes/text_generation,
    arXiv 2512.08365.
    """

    id = "MAG206"
    name = "projection-for-unused-positions"
    category = "Redundant computation"
    message = "a projection is computed for every position but only one position is read"
    suggestion = "select the position before the projection: head(hidden[:, -1, :])"
    VALID = (
        Valid(
            "import torch\n\n\ndef workload():\n    torch.manual_seed(0)\n"
            "    head = torch.nn.Linear(16, 64)\n    return (lambda h: head(h[:, -1, :])), (torch.randn(2, 8, 16),)\n"
        ),
        Valid(
            "import torch\n\n\ndef workload():\n    torch.manual_seed(0)\n"
            "    head = torch.nn.Linear(16, 64)\n    return (lambda h: head(h)[:, :, 0]), (torch.randn(2, 8, 16),)\n",
            why="the selection is on the feature axis",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\n\n\ndef workload():\n    torch.manual_seed(0)\n"
            "    head = torch.nn.Linear(16, 64)\n    return (lambda h: head(h)[:, -1, :]), (torch.randn(2, 8, 16),)\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        for node in view.of_base(*_HEADS):
            if view.is_output(node) or not node.outputs or len(node.outputs[0].shape) < 2:
                continue
            rank = len(node.outputs[0].shape)
            readers = view.consumers(node)
            if not readers or not all(self._one_position(view, r, rank) for r in readers):
                continue
            positions = node.outputs[0].shape[-2]
            if positions >= 2:
                yield GraphHit((node.id, *(r.id for r in readers)), details={"positions": positions})

    @staticmethod
    def _one_position(view: GraphView, reader: object, rank: int) -> bool:
        base = view.base(reader)  # type: ignore[arg-type]
        dim = view.arg(reader, 1)  # type: ignore[arg-type]
        if not isinstance(dim, int) or dim in (-1, rank - 1):
            return False
        if base == "select":
            return True
        if base == "slice":
            start, end = view.arg(reader, 2), view.arg(reader, 3)  # type: ignore[arg-type]
            return start == -1 or (isinstance(start, int) and isinstance(end, int) and end - start == 1)
        return False
