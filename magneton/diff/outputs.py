"""Same computation first: both targets must take the same inputs and return the same outputs.

Outputs are compared as pytrees of tensors (tuples, lists, dicts, dataclasses
and transformers' ``ModelOutput``), leaf by leaf, by their largest relative
difference. A mismatch stops the diff with the output where it is largest,
unless the user allows different outputs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from magneton.errors import MagnetonError


class DiffError(MagnetonError):
    """The two targets of a diff cannot be compared: different inputs or different results."""


def tensor_items(value: Any, path: str = "output") -> list[tuple[str, Any]]:
    """(path, tensor) for every tensor leaf, paths like ``output.logits`` or ``output[0]``."""
    import torch

    if isinstance(value, torch.Tensor):
        return [(path, value)]
    if isinstance(value, (list, tuple)) and not hasattr(value, "to_tuple"):
        return [item for i, v in enumerate(value) for item in tensor_items(v, f"{path}[{i}]")]
    if isinstance(value, dict):  # ModelOutput is an OrderedDict of its non-None fields
        return [item for k, v in value.items() for item in tensor_items(v, f"{path}.{k}")]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            item for f in dataclasses.fields(value) for item in tensor_items(getattr(value, f.name), f"{path}.{f.name}")
        ]
    return []


@dataclass(frozen=True)
class Difference:
    where: str  # pytree path of the leaf
    relative: float  # largest |a - b| / max(|b|) over the leaf; inf when shapes differ
    index: tuple[int, ...] | None  # where in the leaf it is largest
    detail: str = ""


def _tolerance(tensor: Any) -> float:
    import torch

    if tensor.dtype in (torch.float16, torch.bfloat16):
        return 2e-2
    return 1e-3


def largest_difference(a: Any, b: Any, what: str = "output") -> tuple[Difference | None, float]:
    """The leaf where ``a`` and ``b`` differ most (None if they have no tensor leaves) and its tolerance."""
    import torch

    items_a, items_b = tensor_items(a, what), tensor_items(b, what)
    if len(items_a) != len(items_b):
        return Difference(what, math.inf, None, f"side A has {len(items_a)} tensors, side B {len(items_b)}"), 0.0
    worst: Difference | None = None
    tolerance = 1e-3
    for (path, ta), (_, tb) in zip(items_a, items_b, strict=True):
        if tuple(ta.shape) != tuple(tb.shape):
            return Difference(path, math.inf, None, f"shape {list(ta.shape)} vs {list(tb.shape)}"), 0.0
        if ta.numel() == 0:
            continue
        fa, fb = ta.detach().to("cpu", torch.float64), tb.detach().to("cpu", torch.float64)
        diff = (fa - fb).abs()
        diff = torch.where(torch.isnan(fa) & torch.isnan(fb), torch.zeros_like(diff), diff)
        scale = float(fb.abs().max()) or 1.0
        flat_index = int(diff.reshape(-1).argmax())
        relative = float(diff.reshape(-1)[flat_index]) / scale
        if math.isnan(relative):
            relative = math.inf
        if worst is None or relative > worst.relative:
            index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_index), tuple(ta.shape)))
            worst = Difference(path, relative, index)
            tolerance = max(_tolerance(ta), _tolerance(tb))
    return worst, tolerance


def check_same_inputs(inputs_a: Any, inputs_b: Any, target_a: str, target_b: str) -> None:
    """Raise DiffError when the two targets' example inputs differ in shape or value."""
    worst, _ = largest_difference(inputs_a, inputs_b, "inputs")
    if worst is not None and worst.relative > 0:
        where = f" at index {list(worst.index)}" if worst.index else ""
        detail = f" ({worst.detail})" if worst.detail else f": largest relative difference {worst.relative:.3g}{where}"
        raise DiffError(
            f"targets {target_a!r} and {target_b!r} take different example inputs, so their energies cannot be "
            f"compared: {worst.where} differs{detail}. Give both the same inputs."
        )


def check_same_outputs(outputs_a: Any, outputs_b: Any, target_a: str, target_b: str) -> Difference | None:
    """Raise DiffError when outputs differ beyond tolerance; return the largest difference found."""
    worst, tolerance = largest_difference(outputs_a, outputs_b)
    if worst is None:
        raise DiffError(
            f"targets {target_a!r} and {target_b!r}: neither returns a tensor, so there is nothing to match by value"
        )
    if worst.relative > tolerance:
        where = f" at index {list(worst.index)}" if worst.index else ""
        detail = f" ({worst.detail})" if worst.detail else ""
        raise DiffError(
            f"targets {target_a!r} and {target_b!r} do not compute the same thing: the largest relative "
            f"difference is {worst.relative:.3g} (tolerance {tolerance:g}) in {worst.where}{where}{detail}. "
            "Pass --allow-different-outputs to compare them anyway."
        )
    return worst


__all__ = ["DiffError", "Difference", "check_same_inputs", "check_same_outputs", "largest_difference", "tensor_items"]
