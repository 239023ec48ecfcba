"""The module every capture method traces: the workload, with its outputs flattened to tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from magneton.capture.values import tensor_leaves

WRAPPER_PREFIX = "inner"  # the attribute holding a wrapped nn.Module; stripped from module paths


class FlatOutput(nn.Module):
    """Wraps the workload so every capture method sees a plain tuple of tensors out."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        if isinstance(fn, nn.Module):
            self.inner = fn
        else:
            self._fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        fn = self.inner if hasattr(self, "inner") else self._fn
        return tuple(tensor_leaves(fn(*args, **kwargs)))
