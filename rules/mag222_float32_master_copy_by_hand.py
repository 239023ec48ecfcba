from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from magneton.graph import OpNode
from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import VIEW_OPS, GraphView, op_base

_HALF = ("float16", "bfloat16")
_CASTS = ("to_copy", "to", "float", "type_as", "to_dtype")
_MAX_UPSTREAM = 256  # operators searched back from a write-back, within its phase

_OPTIMIZER = """class HalfSGD(torch.optim.Optimizer):
    def __init__(self, params, lr=0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
%s
"""
_HAND_MASTER = (
    "                master = p.float()\n"
    "                master.add_(p.grad.float(), alpha=-group['lr'])\n"
    "                p.copy_(master)"
)
_KEPT_MASTER = (
    "                state = self.state[p]\n"
    "                if 'master' not in state:\n"
    "                    state['master'] = p.detach().float()\n"
    "                state['master'].add_(p.grad.float(), alpha=-group['lr'])\n"
    "                p.copy_(state['master'])"
)
_WORKLOAD = """

def workload():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).to(torch.bfloat16)
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    return magneton.TrainStep(model, (x,), lambda out: out.float().sum(), optimizer=%s)
"""


def _program(optimizer: str, body: str | None = None) -> str:
    head = "import torch\nimport magneton\n\n\n"
    return head + (_OPTIMIZER % body if body else "") + _WORKLOAD % optimizer


class Float32MasterCopyByHand(Rule):
    """A half-precision parameter copied to float32 every step, updated, and written back (training step graph).

    The manual mixed-precision pattern without a kept master: ``master = p.float()``,
    the update in float32, ``p.copy_(master)``. The float32 copy is made from the
    half parameter, so it holds nothing the parameter does not, and it is rounded back
    to half at once: per parameter and step, a conversion kernel each way and the update's
    element-wise work at twice the bytes. ``torch.optim``'s ``fused=True`` kernels (Adam,
    AdamW, SGD, Adagrad) compute a half parameter's whole update in float32 registers and
    round once, with no float32 tensor in memory (foreach and for-loop kernels do each
    element-wise step in float32 and round it); and where float32 master weights are wanted,
    ``torch.amp`` keeps them as the parameters themselves (float32 parameters, the
    forward under ``torch.autocast``), so no copy is made by hand.

    Graph pattern: a graph input that is a float16/bfloat16 parameter of the step, read
    (through views such as ``.data``/``detach``) by a cast to float32 (``_to_copy``), and
    an in-place write (``copy_``) into the same parameter whose value depends, within the
    same phase, on that float32 copy. An optimizer that keeps its float32 master in its
    state (created once, updated every step, the parameter written from it) is the
    correct manual recipe and stays silent: after the step its state holds a float32
    tensor of the parameter's shape. Writing back by rebinding (``p.data = master.half()``)
    replaces the tensor instead of writing into it and is not seen.

    References: https://pytorch.org/docs/stable/amp.html (float32 parameters, autocast),
    https://pytorch.org/docs/stable/optim.html#algorithms (foreach and fused implementations),
    https://docs.nvidia.com/deeplearning/performance/mixed-precision-training/index.html (master weights).
    """

    id = "MAG222"
    name = "float32-master-copy-by-hand"
    category = "Redundant computation"
    message = "half-precision parameter copied to float32 every step, updated, and written back"
    suggestion = (
        "update the half parameters with a torch.optim optimizer (fused=True computes the update in float32 inside "
        "the kernel), or keep float32 parameters and train under torch.autocast (torch.amp)"
    )
    VALID = (
        Valid(
            _program("torch.optim.SGD(model.parameters(), lr=0.01, foreach=True)"),
            why="torch.optim updates the bfloat16 parameters in place; no float32 copy is made",
        ),
        Valid(
            _program("HalfSGD(model.parameters())", _KEPT_MASTER),
            why="the float32 master is kept in the optimizer state: it carries the precision the parameter lacks",
        ),
        Valid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))\n"
            "    opt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.float().sum(), optimizer=opt,\n"
            "                              autocast_dtype=torch.bfloat16)\n",
            why="float32 parameters under autocast (torch.amp): the parameters are the masters",
        ),
    )
    INVALID = (Invalid(_program("HalfSGD(model.parameters())", _HAND_MASTER)),)

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        training = view.graph.training
        if training is None:
            return
        half = {p.placeholder: p for p in training.parameters if p.dtype in _HALF and not p.float32_state}
        if not half:
            return
        matched: dict[str, list[str]] = {}
        for write in view.nodes:
            if not write.mutates:
                continue
            target = _input_placeholder(view, write)
            if target not in half:
                continue
            upstream = _same_phase_upstream(view, write)
            copies = [n for n in upstream if _casts_to(n, "float32") and _input_placeholder(view, n) == target]
            if not copies:
                continue
            dtype = half[target].dtype
            downcasts = [n for n in view.through_views(write) if view.base(n) in _CASTS and _casts_to(n, dtype)]
            matched.setdefault(half[target].name, []).extend(n.id for n in (*copies, *downcasts, write))
        if not matched:
            return
        names = list(matched)
        nodes = [node_id for ids in matched.values() for node_id in dict.fromkeys(ids)]
        dtypes = sorted({p.dtype for p in half.values() if p.name in matched})
        yield GraphHit(
            tuple(nodes),
            message=f"{len(names)} half-precision parameter(s) copied to float32 every step, updated, and written back",
            details={"parameters": names, "dtype": "/".join(dtypes)},
        )


def _casts_to(node: OpNode, dtype: str) -> bool:
    return op_base(node.op) in _CASTS and bool(node.outputs) and node.outputs[0].dtype == dtype


def _input_placeholder(view: GraphView, node: OpNode) -> str | None:
    """The graph input the node's first argument is (through views such as ``detach`` for ``.data``), if any."""
    fx_node: Any = view.fx_node(node)
    current = fx_node.args[0] if fx_node is not None and fx_node.args else None
    while current is not None and getattr(current, "op", None) == "call_function":
        if op_base(str(current.target)) not in VIEW_OPS or not current.args:
            return None
        current = current.args[0]
    return current.name if getattr(current, "op", None) == "placeholder" else None


def _same_phase_upstream(view: GraphView, node: OpNode) -> list[OpNode]:
    """Operators the node's inputs depend on, within its phase (a master update stays inside the optimizer step)."""
    found: dict[str, OpNode] = {}
    frontier = view.producers(node)
    while frontier and len(found) < _MAX_UPSTREAM:
        current = frontier.pop()
        if current.id in found or current.phase != node.phase:
            continue
        found[current.id] = current
        frontier.extend(view.producers(current))
    return list(found.values())
