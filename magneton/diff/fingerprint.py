"""Layout-invariant tensor fingerprints: what a value *is*, whatever shape or memory order it has.

Two programs that compute the same thing hold the same numbers in different
layouts: one library keeps attention heads as ``[B, H, S, D]``, another as
``[B, S, H, D]``; one flattens before a matmul, another after. A fingerprint
is a function of the multiset of a tensor's values only (element count, real
or complex, four moments and the extremes, which are its outermost order
statistics), so permutes, reshapes,
transposes and views leave it unchanged, while scaling, shifting or changing an
element moves some of its statistics.

Statistics are taken in float64 so that the summation order a layout implies
does not show up as a difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from magneton.graph import OpNode

# Stats kept in value units, so one relative tolerance applies to all of them. Inner order
# statistics (quantiles) were dropped: a selection per tensor cost ~30x the moments on CPU.
STAT_NAMES = ("mean", "std", "mean_abs", "min", "max", "cbrt_m3", "root4_m4")


@dataclass(frozen=True)
class Fingerprint:
    numel: int
    kind: str  # "f" float, "c" complex, "i" integer, "b" bool
    stats: tuple[float, ...]  # STAT_NAMES, in value units
    rtol: float  # the comparison tolerance this value's dtype warrants

    @property
    def family(self) -> str:
        """What values of this kind can pair with: "real" for float, integer and bool; else the kind itself."""
        return "real" if self.kind in ("f", "i", "b") else self.kind

    @property
    def mean(self) -> float:
        return self.stats[0]

    @property
    def scale(self) -> float:
        """Typical magnitude of the values: the unit differences are measured in."""
        return max(self.stats[1], self.stats[2], 1e-30)

    def distance(self, other: Fingerprint) -> float:
        """Largest stat difference relative to the larger scale; inf when counts or kinds differ.

        Real kinds (float, integer, bool) compare by their numbers: a count summed in float32 and the
        same count from ``count_nonzero`` (int64), or a bool mask and its 0/1 float copy, are one value.
        """
        if self.numel != other.numel or self.family != other.family:
            return math.inf
        scale = max(self.scale, other.scale)
        return max(abs(a - b) for a, b in zip(self.stats, other.stats, strict=True)) / scale

    def matches(self, other: Fingerprint) -> bool:
        return self.distance(other) <= max(self.rtol, other.rtol)


def _dtype_rtol(dtype: torch.dtype) -> float:
    import torch

    if dtype in (torch.float16, torch.bfloat16):
        return 2e-2  # 8-11 mantissa bits: two implementations of one op differ by several ulps
    return 1e-4


def fingerprint(tensor: torch.Tensor) -> Fingerprint | None:
    """The fingerprint of a dense tensor; None for sparse, nested, meta or empty tensors."""
    import torch

    if tensor.layout != torch.strided or tensor.device.type == "meta" or tensor.numel() == 0:
        return None
    values = tensor.detach()
    if values.is_complex():
        kind, values = "c", torch.view_as_real(values)
    elif values.dtype == torch.bool:
        kind = "b"
    elif values.is_floating_point():
        kind = "f"
    else:
        kind = "i"
    flat = values.reshape(-1).to(torch.float64)
    mean = flat.mean()
    centered = flat - mean
    squared = centered.square()
    low, high = flat.aminmax()
    raw = torch.stack(
        [mean, squared.mean(), flat.abs().mean(), low, high, (squared * centered).mean(), squared.square().mean()]
    ).tolist()  # one device sync for all of them
    m3 = raw[5]
    stats: tuple[float, ...] = (
        raw[0],
        math.sqrt(max(raw[1], 0.0)),
        raw[2],
        raw[3],
        raw[4],
        math.copysign(abs(m3) ** (1 / 3), m3),
        max(raw[6], 0.0) ** 0.25,
    )
    if not all(math.isfinite(s) for s in stats):
        # inf/nan carry no usable statistics; keep them apart from every finite tensor
        stats = tuple(s if math.isfinite(s) else 0.0 for s in stats)
        kind += "!"
    return Fingerprint(tensor.numel(), kind, stats, _dtype_rtol(tensor.dtype))


class FingerprintRecorder:
    """Annotation observer: the fingerprint of every operator's output, by node id.

    Only single-tensor outputs get one; tuple outputs are reached through their
    ``getitem`` nodes, which are operators of their own.
    """

    def __init__(self) -> None:
        self.fingerprints: dict[str, Fingerprint | None] = {}

    def __call__(self, node: OpNode, result: Any) -> None:
        import torch

        if not isinstance(result, torch.Tensor):
            self.fingerprints[node.id] = None
            return
        # A few reductions over at most a few MB: one thread avoids OpenMP barriers, which cost
        # 40x the work itself on a loaded 2-core machine. The program's own setting is restored.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self.fingerprints[node.id] = fingerprint(result)
        finally:
            torch.set_num_threads(threads)


__all__ = ["STAT_NAMES", "Fingerprint", "FingerprintRecorder", "fingerprint"]
