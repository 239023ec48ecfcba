from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import walk
from magneton.rules.source import SourceContext

_GRAD_OFF = ("torch.no_grad", "torch.inference_mode", "torch.set_grad_enabled", "torch.enable_grad")


class InferenceWithoutNoGrad(Rule):
    """A model put in ``eval()`` mode and called in a function with no ``no_grad``/``inference_mode`` (experimental).

    With autograd on, every forward records the graph and keeps activations
    alive for a backward that never comes: more memory traffic and allocation
    for nothing. ``torch.inference_mode()`` also skips version counting.
    Experimental because a function can be called from inside a ``no_grad``
    block elsewhere, which a single file cannot show.

    References: https://pytorch.org/docs/stable/generated/torch.inference_mode.html,
    https://pytorch.org/docs/stable/notes/autograd.html#locally-disabling-gradient-computation.
    """

    id = "MAG902"
    name = "inference-without-no-grad"
    category = "Redundant computation"
    message = "model called in eval mode with autograd on: the graph and activations are kept for no backward"
    suggestion = "wrap inference in `with torch.inference_mode():` (or decorate the function)"
    needles = ("eval()",)
    node_types = (cst.FunctionDef,)
    VALID = (
        Valid(
            "import torch\n\n\ndef predict(model, x):\n    model.eval()\n    with torch.no_grad():\n"
            "        return model(x)\n"
        ),
        Valid(
            "import torch\n\n\n@torch.inference_mode()\ndef predict(model, x):\n    model.eval()\n    return model(x)\n"
        ),
    )
    INVALID = (Invalid("import torch\n\n\ndef predict(model, x):\n    model.eval()\n    return model(x)\n", line=4),)

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.FunctionDef)
        for decorator in node.decorators:
            target = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
            if ctx.qualified_name(target) in _GRAD_OFF:
                return
        evaluated: set[str] = set()
        called = False
        for inner in walk(node.body):
            if isinstance(inner, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return  # nested scopes: too complex to decide
            if isinstance(inner, cst.With) and any(
                ctx.qualified_name(item.item.func if isinstance(item.item, cst.Call) else item.item) in _GRAD_OFF
                for item in inner.items
            ):
                return
            receiver = ctx.method_receiver(inner, "eval")
            if isinstance(receiver, cst.Name):
                evaluated.add(receiver.value)
            if isinstance(inner, cst.Call) and isinstance(inner.func, cst.Name) and inner.func.value in evaluated:
                called = True
        if called:
            yield SourceHit(node.name)
