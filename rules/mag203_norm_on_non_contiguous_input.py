from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

_NORMS = (
    "layer_norm",
    "native_layer_norm",
    "rms_norm",
    "group_norm",
    "native_group_norm",
    "softmax",
    "log_softmax",
)


class NormOnNonContiguousInput(Rule):
    """A layer norm, RMS norm or softmax applied to a non-contiguous view (after a transpose or permute).

    These kernels need contiguous input: PyTorch copies the view into a
    contiguous temporary first (a hidden full read and write), then normalises.
    Normalising before the transpose, or keeping the layout the norm wants,
    avoids the copy. PyTorch issue 76012 (LayerNorm on non-contiguous input)
    cost 16.3% energy in the Magneton study.

    References: https://github.com/pytorch/pytorch/issues/76012,
    https://pytorch.org/docs/stable/generated/torch.Tensor.is_contiguous.html, arXiv 2512.08365.
    """

    id = "MAG203"
    name = "norm-on-non-contiguous-input"
    category = "API misuse"
    message = "normalisation on a non-contiguous view: a hidden copy to a contiguous temporary runs first"
    suggestion = "normalise before transposing/permuting, or produce the tensor in the layout the norm reads"
    min_elements = 4096  # smaller inputs: the copy is negligible
    VALID = (
        Valid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef workload():\n"
            "    return (lambda x: F.layer_norm(x, (64,))), (torch.randn(8, 128, 64),)\n"
        ),
        Valid(
            "import torch\n\n\ndef workload():\n"
            "    return (lambda x: torch.softmax(x.t(), dim=-1)), (torch.randn(4, 4),)\n",
            why="tiny: the copy does not matter",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef norm(x):\n"
            "    return F.layer_norm(x.transpose(0, 1), (64,))\n\n\n"
            "def workload():\n    return norm, (torch.randn(128, 8, 64),)\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        for node in view.of_base(*_NORMS):
            if not node.inputs or node.inputs[0].contiguous or not node.inputs[0].stride:
                continue
            meta = node.inputs[0]
            elements = 1
            for size in meta.shape:
                elements *= size
            if elements >= self.min_elements:
                yield GraphHit(
                    (node.id,),
                    details={"shape": list(meta.shape), "stride": list(meta.stride), "elements": elements},
                )
