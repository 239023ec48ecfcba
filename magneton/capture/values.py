"""Walking program values: the tensors inside any output, and snapshots of inputs."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


def tensor_leaves(value: Any) -> list[torch.Tensor]:
    """Tensors inside any output: tuples, dicts, dataclasses (HF ModelOutput), caches."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensor_leaves(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensor_leaves(item)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for f in dataclasses.fields(value) for t in tensor_leaves(getattr(value, f.name))]
    to_tuple = getattr(value, "to_tuple", None)
    if callable(to_tuple):
        return tensor_leaves(to_tuple())
    return []  # caches and other objects: not part of what we profile


class InputSnapshot:
    """Pristine copies of input tensors, to undo a program that modifies its own inputs.

    Capture with real tensors and every replay of the forward pass run the
    user's program on the user's tensors; an in-place update (a KV cache, say)
    would otherwise make each run see different values than the last.
    """

    def __init__(self, values: Any) -> None:
        self.tensors = tensor_leaves(values)
        self.copies = [tensor.detach().clone() for tensor in self.tensors]

    def changed(self) -> bool:
        return any(not torch.equal(t, c) for t, c in zip(self.tensors, self.copies, strict=True))

    def restore(self) -> None:
        with torch.no_grad():
            for tensor, copy in zip(self.tensors, self.copies, strict=True):
                tensor.copy_(copy)
