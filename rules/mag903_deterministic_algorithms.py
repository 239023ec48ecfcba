from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class DeterministicAlgorithms(Rule):
    """Deterministic algorithms forced on (``use_deterministic_algorithms(True)``, ``cudnn.deterministic = True``).

    Deterministic kernels exclude the fastest (atomics-based, autotuned)
    algorithms, and ``cudnn.deterministic`` also disables benchmarking, so
    convolutions and scatter/index ops run slower. Experimental: bitwise
    reproducibility is sometimes exactly what is wanted.

    References: https://pytorch.org/docs/stable/notes/randomness.html,
    https://pytorch.org/docs/stable/generated/torch.use_deterministic_algorithms.html.
    """

    id = "MAG903"
    name = "deterministic-algorithms"
    category = "Misconfiguration"
    message = "deterministic algorithms forced on: the fastest kernels are excluded"
    suggestion = "enable determinism only for runs that need bitwise reproducibility"
    needles = ("deterministic",)
    node_types = (cst.Call, cst.Assign)
    VALID = (Valid("import torch\ntorch.use_deterministic_algorithms(False)\n"),)
    INVALID = (
        Invalid("import torch\ntorch.use_deterministic_algorithms(True)\n", line=2),
        Invalid("import torch\ntorch.backends.cudnn.deterministic = True\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        if isinstance(node, cst.Call) and ctx.is_call(node, "torch.use_deterministic_algorithms"):
            mode = ctx.arg(node, 0, "mode")
            if isinstance(mode, cst.Name) and mode.value == "True":
                yield SourceHit(node)
        elif isinstance(node, cst.Assign) and isinstance(node.value, cst.Name) and node.value.value == "True":
            for target in node.targets:
                if ctx.qualified_name(target.target) == "torch.backends.cudnn.deterministic":
                    yield SourceHit(node)
