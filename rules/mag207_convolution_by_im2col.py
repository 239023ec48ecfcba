from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

_MATMUL = ("matmul", "bmm", "baddbmm", "mm", "addmm", "einsum", "linear")


class ConvolutionByIm2col(Rule):
    """A convolution written by hand as ``F.unfold`` (im2col) followed by a matmul with the weights.

    ``unfold`` materialises the column matrix: every input element copied once
    per kernel position (k x k times for a k x k kernel), written to memory and
    read back by the matmul. A convolution kernel (oneDNN on CPUs, cuDNN on
    GPUs) reads the input in place, in blocks that stay in cache, or picks
    Winograd/FFT algorithms; ``F.conv2d`` with the same weight (reshaped to
    ``(out, in, k, k)``), padding, stride and dilation computes the same result.

    References: https://pytorch.org/docs/stable/generated/torch.nn.Unfold.html (the convolution example),
    https://pytorch.org/docs/stable/generated/torch.nn.functional.conv2d.html, arXiv 2512.08365.
    """

    id = "MAG207"
    name = "convolution-by-im2col"
    category = "API misuse"
    message = "convolution written as unfold (im2col) + matmul: the k x k column matrix is materialised"
    suggestion = "torch.nn.functional.conv2d(x, weight.view(out, in, k, k), padding=..., stride=..., dilation=...)"
    min_elements = 4096  # smaller column matrices: the copy is negligible
    VALID = (
        Valid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef workload():\n"
            "    x, w = torch.randn(1, 8, 16, 16), torch.randn(4, 8, 3, 3)\n"
            "    return (lambda x, w: F.conv2d(x, w, padding=1)), (x, w)\n"
        ),
        Valid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef patches(x):\n"
            "    return F.unfold(x, 4, stride=4).sum(dim=1)\n\n\n"
            "def workload():\n    return patches, (torch.randn(1, 8, 32, 32),)\n",
            why="patches summed, not multiplied with weights",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\nimport torch.nn.functional as F\n\n\ndef conv(x, w):\n"
            "    columns = F.unfold(x, 3, padding=1)\n"
            "    return (w.flatten(1) @ columns).view(1, 16, 32, 32)\n\n\n"
            "def workload():\n    return conv, (torch.randn(1, 8, 32, 32), torch.randn(16, 8, 3, 3))\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        for im2col in view.of_base("im2col"):
            if view.numel(im2col) < self.min_elements:
                continue
            matmuls = [node for node in view.through_views(im2col, upstream=False) if view.base(node) in _MATMUL]
            if matmuls:
                yield GraphHit(
                    (im2col.id, matmuls[0].id),
                    details={"columns_elements": view.numel(im2col), "kernel_size": view.arg(im2col, 1)},
                )
