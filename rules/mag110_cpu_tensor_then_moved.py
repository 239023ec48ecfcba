from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid
from magneton.rules.patterns import FACTORIES, rebuild_call, torch_factory
from magneton.rules.source import SourceContext


class CpuTensorThenMoved(Rule):
    """A tensor created on the CPU and then moved: ``torch.zeros(n).to(device)``, ``torch.arange(n).cuda()``.

    The tensor is allocated and filled in host memory, then copied to the device
    (a transfer that also synchronises the stream for pageable memory). Passing
    ``device=`` to the factory creates it where it is used, with no copy.

    References: https://pytorch.org/docs/stable/tensor_attributes.html#torch.device,
    https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html (create tensors directly on the target device).
    """

    id = "MAG110"
    name = "cpu-tensor-then-moved"
    category = "API misuse"
    message = "tensor built on the CPU and then copied to the device; create it there with device="
    suggestion = "pass device= to the factory: torch.zeros(n, device=device)"
    fixable = True
    needles = tuple((f"{factory}(", move) for factory in FACTORIES for move in (".to(", ".cuda("))
    node_types = (cst.Call,)
    VALID = (
        Valid("import torch\nx = torch.zeros(3, device=device)\n"),
        Valid("import torch\nx = torch.zeros(3).to(torch.float16)\n", why="a dtype cast, not a move"),
        Valid("import torch\nx = torch.zeros(3).to(other)\n", why="cannot tell a device from a dtype or tensor"),
        Valid("import torch\nx = torch.from_numpy(a).to(device)\n", why="from_numpy has no device argument"),
    )
    INVALID = (
        Invalid(
            "import torch\nx = torch.arange(n).to(device)\n",
            expected_fix="import torch\nx = torch.arange(n, device=device)\n",
            line=2,
        ),
        Invalid(
            "import torch\nmask = torch.ones(4, 4, dtype=torch.bool).cuda()\n",
            expected_fix='import torch\nmask = torch.ones(4, 4, dtype=torch.bool, device="cuda")\n',
        ),
        Invalid(
            "import torch\nt = torch.tensor([1.0, 2.0]).to(x.device)\n",
            expected_fix="import torch\nt = torch.tensor([1.0, 2.0], device=x.device)\n",
        ),
        Invalid(
            "import torch\nt = torch.randn(8).to(device, non_blocking=True)\n",
        ),
    )

    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        receiver = ctx.method_receiver(node, "to", "cuda")
        if receiver is None or not isinstance(node, cst.Call) or not isinstance(receiver, cst.Call):
            return
        if torch_factory(ctx, receiver) is None or "device" in ctx.keywords(receiver) or ctx.has_star(receiver):
            return
        device = self._device(node, ctx)
        if device is None:
            return
        simple = len(node.args) <= 1 and not ctx.has_star(node)
        replacement = rebuild_call(ctx, receiver, add={"device": device}) if simple else None
        yield SourceHit(node, replacement=replacement)

    @staticmethod
    def _device(call: cst.Call, ctx: SourceContext) -> str | None:
        """The device as code, when the call clearly names one; None when it could be a dtype."""
        assert isinstance(call.func, cst.Attribute)
        if call.func.attr.value == "cuda":
            first = ctx.arg(call, 0, "device")
            return '"cuda"' if first is None else ctx.code(first)
        value = ctx.keywords(call).get("device") or ctx.arg(call, 0)
        if value is None:
            return None
        if isinstance(value, cst.SimpleString) and any(d in value.value for d in ("cuda", "mps", "xpu", "npu")):
            return ctx.code(value)
        if isinstance(value, (cst.Name, cst.Attribute)) and "device" in ctx.code(value).lower():
            return ctx.code(value)
        return None
