from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Knob, Rule, Valid
from magneton.rules.runtime import RuntimeEnv


class CudnnBenchmarkOff(Rule):
    """Convolutions on CUDA with ``torch.backends.cudnn.benchmark`` off, for a workload with static shapes.

    Without benchmarking cuDNN picks a convolution algorithm by heuristics; with
    it, the fastest algorithm for each input shape is measured once and reused.
    For fixed shapes (the captured graph has them) this is a free speed-up;
    with constantly changing shapes the benchmarking itself costs, so the
    finding says to check that the shapes are fixed.

    References: https://pytorch.org/docs/stable/backends.html#torch.backends.cudnn.benchmark,
    https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html (enable cuDNN auto-tuner).
    """

    id = "MAG304"
    name = "cudnn-benchmark-off"
    category = "Misconfiguration"
    message = "cuDNN convolutions run with benchmark=False; with fixed input shapes the autotuner picks faster ones"
    suggestion = "torch.backends.cudnn.benchmark = True (when input shapes do not change between calls)"
    knob = Knob("torch.backends.cudnn.benchmark", True, "torch.backends.cudnn.benchmark = True")
    _WORKLOAD = (
        "import torch\n\n\ndef workload():\n    torch.manual_seed(0)\n"
        "    return torch.nn.Conv2d(3, 8, 3).eval(), (torch.randn(1, 3, 16, 16),)\n"
    )
    _MLP = "import torch\n\n\ndef workload():\n    return torch.nn.Linear(8, 8).eval(), (torch.randn(2, 8),)\n"
    VALID = (
        Valid(_WORKLOAD, why="CPU: no cuDNN"),
        Valid(_WORKLOAD, why="already on", env={"device": "cuda:0", "cudnn_benchmark": True}),
        Valid(_MLP, why="no convolution", env={"device": "cuda:0", "cudnn_benchmark": False}),
    )
    INVALID = (Invalid(_WORKLOAD, env={"device": "cuda:0", "cudnn_benchmark": False}),)

    def check_runtime(self, env: RuntimeEnv) -> Iterator[GraphHit]:
        if not env.on_cuda or env.cudnn_benchmark:
            return
        nodes = tuple(
            node.id for node in env.view.of_base("convolution", "cudnn_convolution", "conv2d", "conv1d", "conv3d")
        )
        if nodes:
            yield GraphHit(nodes, details={"convolutions": len(nodes)})
