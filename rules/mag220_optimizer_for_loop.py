from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

# Per-parameter in-place updates of the for-loop implementations (Adam/AdamW, SGD, RMSprop, Adagrad, ...).
_UPDATES = ("addcdiv_", "addcmul_", "lerp_", "add_", "mul_", "sqrt_", "div_")
_BATCHED = ("aten._foreach_", "aten._fused_")
_MIN_UPDATES = 4  # a single parameter's update is no loop


class OptimizerForLoop(Rule):
    """An optimizer step in for-loop mode: one small kernel per parameter per update term (training step graph).

    ``torch.optim`` optimizers have three implementations. The for-loop one updates each
    parameter in turn with several small element-wise kernels, so launch and dispatch
    overhead is paid parameters x terms times; ``foreach=True`` runs each term over all
    parameters in one multi-tensor kernel, and ``fused=True`` (Adam, AdamW, SGD, Adagrad on
    CPU and CUDA) runs the whole update in one kernel. On CUDA foreach is the default only when
    every parameter is on the GPU and nothing disabled it; on the CPU the default is the for-loop.
    The results agree to rounding.

    References: https://pytorch.org/docs/stable/optim.html#algorithms (foreach and fused),
    https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html.
    """

    id = "MAG220"
    name = "optimizer-for-loop"
    category = "Misconfiguration"
    message = "optimizer step runs per parameter (for-loop mode) where foreach or fused kernels exist"
    suggestion = "build the optimizer with fused=True (Adam, AdamW, SGD, Adagrad) or foreach=True"
    VALID = (
        Valid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))\n"
            "    opt = torch.optim.AdamW(model.parameters(), foreach=True)\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum(), optimizer=opt)\n",
            why="foreach: one multi-tensor kernel per update term",
        ),
        Valid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum())\n",
            why="no optimizer in the step",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))\n"
            "    opt = torch.optim.AdamW(model.parameters(), foreach=False)\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum(), optimizer=opt)\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        optimizer = [n for n in view.nodes if n.phase == "optimizer"]
        if any(n.op.startswith(_BATCHED) for n in optimizer):
            return
        updates = [n for n in optimizer if n.mutates and n.op.split(".")[1:2] and n.op.split(".")[1] in _UPDATES]
        if len(updates) >= _MIN_UPDATES:
            yield GraphHit(tuple(n.id for n in updates), details={"per_parameter_kernels": len(updates)})
