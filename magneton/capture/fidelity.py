"""Does a captured graph do the work the eager program does for these inputs?

A tracer can make the program take another path than eager: library code that
checks ``torch.compiler.is_compiling()`` or sees an fx Proxy (transformers builds
its causal mask and copies K/V heads under torch.export, but calls fused SDPA with
no mask in eager). Analysing that graph would judge work the user never runs.

The check records, with a dispatch mode, the ATen operators one eager call
dispatches and those one run of the captured graph dispatches, and compares the
two multisets of calls (with the bytes each op writes). Both runs are compared at
the dispatch level: a graph keeps composite ops (``scaled_dot_product_attention``)
whose backend op only shows once it runs, so node names would not compare. Counts,
not values, are compared, so random ops (dropout) do not count as a difference.
Operators that do no work are left out: views, metadata checks, constants lifted
into the graph.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from magneton.capture.torch_compat import TorchDispatchMode, mutates_arguments
from magneton.capture.values import tensor_leaves

# Bookkeeping ops a tracer adds or drops that move no data worth comparing: export's metadata asserts and
# the ops that turn a Python-created tensor into a graph constant (eager: lift_fresh, graph: lift_fresh_copy).
_IGNORED = frozenset(
    {
        "lift_fresh",
        "lift_fresh_copy",
        "_assert_tensor_metadata",
        "_assert_scalar",
        "_assert_async",
        "sym_constrain_range_for_size",
        "detach",
        "alias",
    }
)

# A difference smaller than this share of the eager run's written bytes is noise of the comparison
# (a scalar constant materialised differently), not another program path.
MATERIAL_BYTES_SHARE = 0.001


def _op_key(func: Any) -> str:
    """``aten.add_.Tensor`` -> ``add``: in-place and functional forms of an op do the same work."""
    name = str(func.overloadpacket.__name__)
    if name.endswith("_") and not name.endswith("__"):
        name = name[:-1]
    return name


def _storages(tensors: list[torch.Tensor]) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors if t.layout == torch.strided and t.numel() > 0}


@dataclass
class DispatchProfile:
    """ATen operator calls one run dispatched, and the bytes each op's outputs hold (summed over calls)."""

    calls: Counter[str] = field(default_factory=Counter)
    bytes_written: Counter[str] = field(default_factory=Counter)

    def total_bytes(self) -> int:
        return sum(self.bytes_written.values())

    def record(self, func: Any, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        key = _op_key(func)
        if key in _IGNORED:
            return
        outputs = [t for t in tensor_leaves(out) if isinstance(t, torch.Tensor)]
        if not outputs or all(t.numel() == 0 for t in outputs):
            return  # metadata queries, asserts, empty results
        if not mutates_arguments(func):
            inputs = tensor_leaves((list(args), kwargs))
            if _storages(outputs) <= _storages(inputs):
                return  # a view: no data moves
        self.calls[key] += 1
        self.bytes_written[key] += sum(t.numel() * t.element_size() for t in outputs)


@contextlib.contextmanager
def recording() -> Iterator[DispatchProfile]:
    """``with recording() as profile:`` records every ATen op dispatched inside."""
    profile = DispatchProfile()

    class _Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            profile.record(func, args, kwargs, out)
            return out

    with _Mode():
        yield profile


def record_call(call: Callable[[], Any]) -> DispatchProfile:
    """The ATen operators one ``call()`` dispatches."""
    with recording() as profile:
        call()
    return profile


@dataclass(frozen=True)
class Divergence:
    """How a graph's run differs from the eager run: extra calls it makes, calls it lacks, and their bytes."""

    extra: dict[str, int]  # op -> calls the graph makes beyond eager's
    missing: dict[str, int]  # op -> eager calls the graph does not make
    extra_bytes: int
    missing_bytes: int
    eager_bytes: int

    @property
    def extra_calls(self) -> int:
        return sum(self.extra.values())

    @property
    def missing_calls(self) -> int:
        return sum(self.missing.values())

    def is_material(self) -> bool:
        changed = self.extra_bytes + self.missing_bytes
        return changed > MATERIAL_BYTES_SHARE * max(self.eager_bytes, 1)

    def describe(self, limit: int = 4) -> str:
        """``runs 12 operator calls eager does not (clone x4, where x2, ...)``, and what it lacks."""
        parts = []
        if self.extra:
            parts.append(
                f"runs {self.extra_calls} operator call{'s' if self.extra_calls != 1 else ''} eager does not "
                f"({_top(self.extra, limit)})"
            )
        if self.missing:
            parts.append(f"lacks {self.missing_calls} that eager runs ({_top(self.missing, limit)})")
        return " and ".join(parts) if parts else "runs the same operators as eager"


def _top(ops: dict[str, int], limit: int) -> str:
    ranked = sorted(ops.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{op} x{count}" for op, count in ranked[:limit])
    return shown + (", ..." if len(ranked) > limit else "")


def compare(eager: DispatchProfile, graph: DispatchProfile) -> Divergence:
    """What the graph's run does that eager's does not, and the reverse (op multisets; bytes per op)."""
    extra = dict(graph.calls - eager.calls)
    missing = dict(eager.calls - graph.calls)
    extra_bytes = 0
    missing_bytes = 0
    for op in set(graph.bytes_written) | set(eager.bytes_written):
        delta = graph.bytes_written[op] - eager.bytes_written[op]
        if delta > 0:
            extra_bytes += delta
        else:
            missing_bytes -= delta
    return Divergence(extra, missing, extra_bytes, missing_bytes, eager.total_bytes())


__all__ = ["DispatchProfile", "Divergence", "compare", "record_call", "recording"]
