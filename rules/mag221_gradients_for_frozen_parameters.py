from __future__ import annotations

from collections.abc import Iterable, Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

_SHOWN = 4  # parameter names in the message; details list them all


class GradientsForFrozenParameters(Rule):
    """Backward computes gradients for parameters the optimizer never updates (training step graph).

    ``loss.backward()`` computes a gradient for every leaf with ``requires_grad=True``,
    whatever the optimizer holds. A parameter left out of every param group, or in a group
    whose ``lr`` is 0 for good (a warm-up schedule's 0 keeps a non-zero ``initial_lr`` and
    does not count), is frozen in effect, yet its gradient is still computed each step:
    weight-gradient matmuls, bias sums, and the backward of every layer between it and
    the nearest parameter that is updated. Nothing reads those gradients. Setting
    ``requires_grad_(False)`` on the frozen parameters makes autograd skip that work (the
    usual recipe for fine-tuning a head on a frozen backbone); the parameters that are
    trained get bit-identical gradients.

    Detection: the step's optimizer param groups say which parameters are updated. The
    matched operators are the backward operators upstream of a frozen parameter's gradient
    and of no updated parameter's gradient; their energy is what the fix removes. A step
    sees one optimizer: parameters that a second optimizer updates outside the step (a GAN's
    other network) are reported too, and there the gradients are not waste.

    References: https://pytorch.org/docs/stable/notes/autograd.html#setting-requires-grad,
    https://pytorch.org/tutorials/beginner/finetuning_torchvision_models_tutorial.html.
    """

    id = "MAG221"
    name = "gradients-for-frozen-parameters"
    category = "Redundant computation"
    message = "backward computes gradients for parameters the optimizer never updates"
    suggestion = "param.requires_grad_(False) on every parameter the optimizer does not update (or leaves at lr=0)"
    VALID = (
        Valid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))\n"
            "    model[0].requires_grad_(False)\n"
            "    opt = torch.optim.SGD(model[2].parameters(), lr=0.1)\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum(), optimizer=opt)\n",
            why="the frozen layer has requires_grad=False: backward stops at the trained layer",
        ),
        Valid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum())\n",
            why="no optimizer in the step: nothing says which parameters are trained",
        ),
        Valid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))\n"
            "    groups = [{'params': model[0].parameters(), 'lr': 0.01}, {'params': model[2].parameters()}]\n"
            "    opt = torch.optim.SGD(groups, lr=0.1)\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum(), optimizer=opt)\n",
            why="every parameter is in a group with a non-zero learning rate",
        ),
        Valid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))\n"
            "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: step / 100)  # lr is 0 at step 0\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum(), optimizer=opt)\n",
            why="an lr of 0 set by a warm-up schedule (the group keeps its initial_lr): the parameters are trained",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))\n"
            "    opt = torch.optim.SGD(model[2].parameters(), lr=0.1)  # model[0] is meant to stay frozen\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum(), optimizer=opt)\n"
        ),
        Invalid(
            "import torch\nimport magneton\n\n\ndef workload():\n"
            "    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))\n"
            "    groups = [{'params': model[0].parameters(), 'lr': 0.0}, {'params': model[2].parameters()}]\n"
            "    opt = torch.optim.AdamW(groups, lr=1e-3)\n"
            "    return magneton.TrainStep(model, (torch.randn(4, 8),), lambda out: out.sum(), optimizer=opt)\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        training = view.graph.training
        if training is None or training.optimizer is None:
            return
        frozen = [p for p in training.parameters if p.requires_grad and p.updated is False and p.gradient_node]
        if not frozen:
            return
        live = [p.gradient_node for p in training.parameters if p.updated and p.gradient_node]
        wasted = _backward_upstream(view, [p.gradient_node for p in frozen if p.gradient_node])
        wasted -= _backward_upstream(view, live)
        if not wasted:
            return
        ordered = [node for node in view.nodes if node.id in wasted]
        names = [p.name for p in frozen]
        # The finding shows first a computing operator of a frozen parameter's own module (its line is the one
        # to fix), else one with a source line.
        modules = {name.rpartition(".")[0] for name in names}
        computing = [n for n in ordered if not view.is_view(n)] or ordered
        first = next(
            (n for n in computing if n.source is not None and n.module_path in modules),
            next((n for n in computing if n.source is not None), computing[0]),
        )
        shown = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
        yield GraphHit(
            (first.id, *(n.id for n in ordered if n.id != first.id)),
            message=f"backward computes gradients for {len(names)} parameter(s) the optimizer never updates: {shown}",
            details={"frozen_parameters": names, "backward_operators": len(ordered)},
        )


def _backward_upstream(view: GraphView, gradients: Iterable[str]) -> set[str]:
    """Every backward operator a gradient depends on (the gradient's own node included)."""
    found: set[str] = set()
    frontier = [view.node(node_id) for node_id in gradients]
    while frontier:
        node = frontier.pop()
        if node.id in found or node.phase != "backward":
            continue
        found.add(node.id)
        frontier.extend(view.producers(node))
    return found
