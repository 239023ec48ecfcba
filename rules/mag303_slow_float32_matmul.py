from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Knob, Rule, Valid
from magneton.rules.runtime import RuntimeEnv

_MATMUL = ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "convolution", "cudnn_convolution")


class SlowFloat32Matmul(Rule):
    """float32 matmuls at the slowest precision (TF32 off) on a GPU with TF32 tensor cores (Ampere or newer).

    PyTorch's default ``float32_matmul_precision`` is ``"highest"``: float32
    matmuls run on CUDA cores, several times slower and costlier than TF32 tensor
    cores (10-bit mantissa inputs, float32 accumulation), which most training and
    inference tolerates. Stable Diffusion issue 279 (TF32 off for linear layers)
    cost 12.5% energy in the Magneton study; vLLM 9471 is related.

    References: https://pytorch.org/docs/stable/generated/torch.set_float32_matmul_precision.html,
    https://pytorch.org/docs/stable/notes/cuda.html#tensorfloat-32-tf32-on-ampere-and-later-devices,
    arXiv 2512.08365.
    """

    id = "MAG303"
    name = "slow-float32-matmul"
    category = "Misconfiguration"
    message = "float32 matmuls run at 'highest' precision on a GPU with TF32 tensor cores"
    suggestion = 'torch.set_float32_matmul_precision("high") at start-up, if TF32 accuracy is acceptable'
    knob = Knob("torch.float32_matmul_precision", "high", 'torch.set_float32_matmul_precision("high")')
    _WORKLOAD = (
        "import torch\n\n\ndef workload():\n    torch.manual_seed(0)\n"
        "    return torch.nn.Linear(64, 64).eval(), (torch.randn(8, 64),)\n"
    )
    VALID = (
        Valid(_WORKLOAD, why="on the CPU: no TF32"),
        Valid(_WORKLOAD, why="a Volta GPU has no TF32", env={"device": "cuda:0", "cuda_capability": (7, 0)}),
        Valid(
            _WORKLOAD,
            why="already at high precision",
            env={"device": "cuda:0", "cuda_capability": (8, 0), "float32_matmul_precision": "high"},
        ),
    )
    INVALID = (
        Invalid(
            _WORKLOAD,
            env={
                "device": "cuda:0",
                "cuda_capability": (8, 0),
                "float32_matmul_precision": "highest",
                "cuda_matmul_allow_tf32": False,
            },
        ),
    )

    def check_runtime(self, env: RuntimeEnv) -> Iterator[GraphHit]:
        if not env.on_cuda or env.cuda_capability is None or env.cuda_capability < (8, 0):
            return
        if env.float32_matmul_precision != "highest" or env.cuda_matmul_allow_tf32:
            return
        nodes = tuple(
            node.id for node in env.view.of_base(*_MATMUL) if node.inputs and node.inputs[0].dtype == "float32"
        )
        if nodes:
            yield GraphHit(nodes, details={"float32_matmuls": len(nodes)})
