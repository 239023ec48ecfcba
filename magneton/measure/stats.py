"""Small, dependency-free statistics for repeated energy measurements."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Median of repeated trials with a distribution-free confidence interval."""

    median: float
    low: float
    high: float
    confidence: float  # coverage probability of [low, high] for the true median
    samples: tuple[float, ...]

    @property
    def relative_spread(self) -> float:
        """Half-width of the interval relative to the median (0 when the median is 0)."""
        if self.median == 0:
            return 0.0
        return (self.high - self.low) / (2 * abs(self.median))

    def to_json(self) -> dict[str, object]:
        return {
            "median": self.median,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "samples": list(self.samples),
        }


def _binomial_cdf_below(k: int, n: int) -> float:
    """P(X < k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k)) / 2**n


def summarize(samples: Sequence[float], confidence: float = 0.95) -> Summary:
    """Median with the order-statistic interval [x_(k), x_(n-k+1)].

    It needs no assumption about the noise distribution. With few trials the
    widest interval (min, max) may still fall short of the requested level;
    the achieved level is reported rather than pretended.
    """
    if not samples:
        raise ValueError("summarize() needs at least one sample")
    ordered = sorted(samples)
    n = len(ordered)
    alpha = 1 - confidence
    k = 1  # 1-based index of the lower order statistic
    while k + 1 <= n // 2 and _binomial_cdf_below(k + 1, n) <= alpha / 2:
        k += 1
    achieved = 1 - 2 * _binomial_cdf_below(k, n) if n > 1 else 0.0
    return Summary(statistics.median(ordered), ordered[k - 1], ordered[n - k], achieved, tuple(samples))


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for position in range(i, j + 1):  # ties share their average rank
            ranks[order[position]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("spearman() needs two sequences of equal length >= 2")
    ra, rb = _ranks(a), _ranks(b)
    mean_a, mean_b = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in ra)
    var_b = sum((y - mean_b) ** 2 for y in rb)
    if var_a == 0 or var_b == 0:
        return float("nan")
    return cov / math.sqrt(var_a * var_b)
