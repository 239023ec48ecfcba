"""Comparing two variants' outputs: same computation means equal outputs within a tolerance."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_TOLERANCE = 0.01  # the "same outputs within 1%"


@dataclass(frozen=True)
class OutputComparison:
    equal: bool
    max_relative_difference: float  # max |a - b| / max |b|, over the worst output
    where: str  # the output holding the largest difference, e.g. "out[0]['logits']"
    problem: str = ""  # a structural mismatch (shapes, counts), when there is one


def flatten_outputs(value: Any, path: str = "out") -> list[tuple[str, Any]]:
    """(path, leaf) pairs of tensors and numbers in nested tuples, lists, dicts and dataclasses."""
    import torch

    if isinstance(value, torch.Tensor):
        return [(path, value)]
    if isinstance(value, Mapping):  # transformers' ModelOutput is an OrderedDict
        return [pair for key, item in value.items() for pair in flatten_outputs(item, f"{path}[{key!r}]")]
    if isinstance(value, (tuple, list)):
        return [pair for i, item in enumerate(value) for pair in flatten_outputs(item, f"{path}[{i}]")]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            pair
            for f in dataclasses.fields(value)
            for pair in flatten_outputs(getattr(value, f.name), f"{path}.{f.name}")
        ]
    if isinstance(value, (bool, int, float, complex)):
        return [(path, value)]
    return []


def _as_float_tensor(value: Any) -> Any:
    import torch

    tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    tensor = tensor.detach().cpu()
    if tensor.is_complex():
        return torch.view_as_real(tensor).double()
    return tensor.double()


def compare_outputs(slow: Any, fast: Any, tolerance: float = DEFAULT_TOLERANCE) -> OutputComparison:
    """Largest difference relative to the fast output's scale, over every leaf of the two outputs."""
    a, b = flatten_outputs(slow), flatten_outputs(fast)
    if not b:
        return OutputComparison(False, float("inf"), "out", "the fast variant returned no tensor")
    if len(a) != len(b):
        return OutputComparison(False, float("inf"), "out", f"slow returns {len(a)} outputs, fast returns {len(b)}")
    worst, where = 0.0, a[0][0]
    for (path, left), (_, right) in zip(a, b, strict=True):
        x, y = _as_float_tensor(left), _as_float_tensor(right)
        if x.shape != y.shape:
            return OutputComparison(False, float("inf"), path, f"shape {tuple(x.shape)} vs {tuple(y.shape)} at {path}")
        if x.numel() == 0:
            continue
        scale = float(y.abs().max())
        difference = float((x - y).abs().max())
        relative = difference / scale if scale > 0 else (0.0 if difference == 0 else float("inf"))
        if relative != relative:  # NaN on either side
            return OutputComparison(False, float("inf"), path, f"NaN at {path}")
        if relative > worst:
            worst, where = relative, path
    return OutputComparison(worst <= tolerance, worst, where)


__all__ = ["DEFAULT_TOLERANCE", "OutputComparison", "compare_outputs", "flatten_outputs"]
