from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

_HALF = ("float16", "bfloat16")
_CASTS = ("to", "to_copy", "type_as", "float", "half", "bfloat16")


class HalfSoftmaxUpcast(Rule):
    """A half-precision tensor cast to float32 for a softmax and straight back (seen in the captured graph).

    Two conversion kernels and a float32 softmax (twice the bytes) where the
    half/bfloat16 softmax kernels already accumulate in float32 and round once.
    Common in library attention code (``softmax(..., dtype=torch.float32).to(q.dtype)``).

    References: https://pytorch.org/docs/stable/generated/torch.nn.functional.softmax.html,
    https://github.com/pytorch/pytorch/blob/main/aten/src/ATen/native/cuda/SoftMax.cu (accscalar_t).
    """

    id = "MAG205"
    name = "half-softmax-upcast"
    category = "Redundant computation"
    message = "half-precision tensor upcast to float32 for softmax and cast straight back"
    suggestion = "softmax(x, dim) in the half dtype (it accumulates in float32 internally)"
    VALID = (
        Valid(
            "import torch\n\n\ndef workload():\n"
            "    return (lambda x: torch.softmax(x, dim=-1)), (torch.randn(4, 64, dtype=torch.bfloat16),)\n"
        ),
        Valid(
            "import torch\n\n\ndef workload():\n    return (lambda x: torch.softmax(x.float(), dim=-1)), "
            "(torch.randn(4, 64, dtype=torch.bfloat16),)\n",
            why="the float32 probabilities are kept",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\n\n\ndef f(x):\n    return torch.softmax(x.float(), dim=-1).to(x.dtype)\n\n\n"
            "def workload():\n    return f, (torch.randn(4, 64, dtype=torch.bfloat16),)\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        for softmax in view.of_base("softmax"):
            if not softmax.outputs or softmax.outputs[0].dtype != "float32":
                continue
            ups = [n for n in view.through_views(softmax) if view.base(n) in _CASTS]
            downs = [n for n in view.through_views(softmax, upstream=False) if view.base(n) in _CASTS]
            if not ups or not downs or not ups[0].inputs:
                continue
            half = ups[0].inputs[0].dtype
            if half in _HALF and all(d.outputs and d.outputs[0].dtype == half for d in downs):
                yield GraphHit((softmax.id, ups[0].id, *(d.id for d in downs)), details={"dtype": half})
