"""Verdicts on a matched region: ``waste``, ``tradeoff`` or ``same``.

``waste``: one side spends more than ``threshold`` more energy with
confidence, the cheaper side is not more than 1% slower, and the region
outputs agree within 1%. Confidence: either the two sides' trial intervals do
not overlap, or, since both sides are measured back to back in every trial,
the per-trial ratios (costly / cheap) have an interval above 1. Machine load
that drifts between trials moves both sides of one trial alike, so the paired
ratios stay tight where the two intervals widen and overlap. ``tradeoff``: the
energy gap is real but the cheaper side is slower (or computes something
measurably different); with per-trial times, "slower" too must hold trial by
trial, so wall-time swings from preemption do not turn waste into a tradeoff.
``same``: below the threshold, or not distinguishable from noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from magneton.measure.stats import Summary, summarize

VerdictName = Literal["waste", "tradeoff", "same"]
SLOWER_TOLERANCE = 0.01  # the cheaper side may be this much slower and still be plainly better
OUTPUT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictName
    costly: str | None  # "A" or "B": the side spending more; None when equal
    ratio: float  # energy A / energy B (inf when B spends nothing)
    excess_energy_j: float  # costly side's energy minus the cheaper side's
    confident: bool  # the two sides' intervals do not overlap, or the paired per-trial ratios exclude 1
    reason: str


def _median(summary: Summary | None) -> float:
    return summary.median if summary is not None else 0.0


def paired_ratios(costly: Summary | None, cheap: Summary | None) -> list[float]:
    """costly / cheap per trial, when both sides were measured in the same trials (same sample count)."""
    if costly is None or cheap is None or len(costly.samples) != len(cheap.samples) or len(costly.samples) < 3:
        return []
    return [c / p for c, p in zip(costly.samples, cheap.samples, strict=True) if p > 0]


def _paired_confident(costly: Summary | None, cheap: Summary | None) -> bool:
    ratios = paired_ratios(costly, cheap)
    return len(ratios) >= 3 and summarize(ratios).low > 1.0


def _median_time(time_s: Summary | float) -> float:
    return time_s.median if isinstance(time_s, Summary) else time_s


def _slower(cheap_t: Summary | float, costly_t: Summary | float) -> bool:
    """The cheaper side takes more than SLOWER_TOLERANCE longer: by the medians and, where the trials pair up,
    in the paired per-trial ratios too (wall time swings with preemption on a loaded machine)."""
    if _median_time(cheap_t) <= _median_time(costly_t) * (1 + SLOWER_TOLERANCE):
        return False
    if isinstance(cheap_t, Summary) and isinstance(costly_t, Summary):
        ratios = paired_ratios(cheap_t, costly_t)
        if ratios:
            return summarize(ratios).low > 1.0
    return True


def judge(
    a_energy: Summary | None,
    b_energy: Summary | None,
    a_time_s: Summary | float,
    b_time_s: Summary | float,
    threshold: float,
    outputs_difference: float = 0.0,
) -> Verdict:
    """Compare one region's energies (None: the side runs nothing that costs energy there)."""
    a_j, b_j = _median(a_energy), _median(b_energy)
    ratio = a_j / b_j if b_j > 0 else (math.inf if a_j > 0 else 1.0)
    if a_j == b_j:
        return Verdict("same", None, ratio, 0.0, False, "equal energy")
    costly, cheap = ("A", "B") if a_j > b_j else ("B", "A")
    costly_e, cheap_e = (a_energy, b_energy) if costly == "A" else (b_energy, a_energy)
    costly_j, cheap_j = max(a_j, b_j), min(a_j, b_j)
    costly_t, cheap_t = (a_time_s, b_time_s) if costly == "A" else (b_time_s, a_time_s)
    excess = costly_j - cheap_j
    gap = excess / cheap_j if cheap_j > 0 else math.inf
    costly_low = costly_e.low if costly_e is not None else 0.0
    cheap_high = cheap_e.high if cheap_e is not None else 0.0
    confident = costly_low > cheap_high or _paired_confident(costly_e, cheap_e)
    if gap <= threshold:
        return Verdict(
            "same", costly, ratio, excess, confident, f"gap {gap:.1%} is within the {threshold:.0%} threshold"
        )
    if not confident:
        return Verdict("same", costly, ratio, excess, False, f"gap {gap:.1%} but the trial intervals overlap")
    if _slower(cheap_t, costly_t):
        slower = _median_time(cheap_t) / _median_time(costly_t) - 1 if _median_time(costly_t) > 0 else math.inf
        return Verdict(
            "tradeoff",
            costly,
            ratio,
            excess,
            True,
            f"side {cheap} spends {gap:.1%} less energy but is {slower:.1%} slower",
        )
    if outputs_difference > OUTPUT_TOLERANCE:
        return Verdict(
            "tradeoff",
            costly,
            ratio,
            excess,
            True,
            f"side {cheap} spends {gap:.1%} less energy but its outputs differ by {outputs_difference:.1%}",
        )
    return Verdict("waste", costly, ratio, excess, True, f"side {costly} spends {gap:.1%} more energy, with confidence")


__all__ = ["OUTPUT_TOLERANCE", "SLOWER_TOLERANCE", "Verdict", "VerdictName", "judge", "paired_ratios"]
