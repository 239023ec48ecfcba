from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.source import SourceContext


class AnomalyDetectionLeftOn(Rule):
    """Autograd anomaly detection switched on (``set_detect_anomaly(True)`` / ``detect_anomaly()``).

    Anomaly mode records a Python stack trace for every autograd node and checks
    every backward output for NaN, which slows training many times over. It is a
    debugging tool; the PyTorch docs warn it should only be enabled for debugging.

    References: https://pytorch.org/docs/stable/autograd.html#anomaly-detection.
    """

    id = "MAG305"
    name = "anomaly-detection-left-on"
    category = "Misconfiguration"
    message = "autograd anomaly detection is on: a stack trace per op and NaN checks on every backward"
    suggestion = "remove it, or torch.autograd.set_detect_anomaly(False), outside debugging sessions"
    fixable = True
    needles = ("anomaly",)
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\ntorch.autograd.set_detect_anomaly(False)\n"),
        Valid("import torch\ntorch.autograd.set_detect_anomaly(args.debug)\n", why="a switch the user controls"),
    )
    INVALID = (
        Invalid(
            "import torch\ntorch.autograd.set_detect_anomaly(True)\n",
            expected_fix="import torch\ntorch.autograd.set_detect_anomaly(False)\n",
            line=2,
        ),
        Invalid("import torch\nwith torch.autograd.detect_anomaly():\n    loss.backward()\n"),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        assert isinstance(node, cst.Call)
        if ctx.is_call(node, "torch.autograd.set_detect_anomaly", "torch.autograd.anomaly_mode.set_detect_anomaly"):
            mode = ctx.arg(node, 0, "mode")
            if isinstance(mode, cst.Name) and mode.value == "True":
                yield SourceHit(mode, replacement=cst.Name("False"))
        elif ctx.is_call(node, "torch.autograd.detect_anomaly", "torch.autograd.anomaly_mode.detect_anomaly"):
            yield SourceHit(node)
