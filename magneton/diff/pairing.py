"""Pairing values across two programs by fingerprint, near-linearly.

Values are bucketed by (element count, real or complex, constant or not) and by a
grid on their mean and maximum a few tolerances wide, so each value of side A
is compared only with the few values of side B in neighbouring cells:
near-linear in graph size instead of all pairs. A fingerprint can fit many values (a mask
built once per layer, zeros, repeated layers with equal weights): the
ambiguity is resolved by graph order, keeping the largest set of pairs that
respects both programs' orders (a longest increasing subsequence), each value
in at most one pair, the earliest when several fit equally.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field

from magneton.diff.flow import Flow

# Candidates kept per value of side A when a fingerprint is very common (zeros, masks):
# the nearest in relative program position; bounds the work on degenerate graphs.
MAX_CANDIDATES = 48
# In a grid cell crowded with equal values, the peers this near in program order are compared.
CROWDED_NEIGHBOURS = 6


def _cell_size(scale: float, level: int, rtol: float) -> float:
    return 2.0**level * 4.0 * rtol


def _candidates(a: Flow, b: Flow) -> list[tuple[int, int]]:
    """Pairs (i, j) whose fingerprints match, found through a grid on (mean, max).

    Sorting by one statistic is not enough: every LayerNorm output of a transformer has mean
    0 and std 1, so a window on the mean would hold one per layer and pairing would grow
    quadratically with depth. Cells are a few tolerances wide at the value's scale (a power
    of two); a matching value lies in this value's cell or, near a cell's edge, the next one.
    """
    rtol = max(
        [fp.rtol for fp in a.fingerprints if fp is not None] + [fp.rtol for fp in b.fingerprints if fp is not None],
        default=1e-4,
    )
    grid: dict[tuple[int, str, bool, int, int, int], list[int]] = defaultdict(list)
    for j, fp in enumerate(b.fingerprints):
        if fp is None:
            continue
        level = math.floor(math.log2(fp.scale))
        size = _cell_size(fp.scale, level, rtol)
        grid[
            (fp.numel, fp.family, b.constant[j], level, math.floor(fp.mean / size), math.floor(fp.stats[4] / size))
        ].append(j)
    pairs: list[tuple[int, int]] = []
    for i, fp in enumerate(a.fingerprints):
        if fp is None:
            continue
        found: list[int] = []
        slack = 2.0 * rtol * fp.scale  # how far a matching value's statistics can lie from this one's
        levels = {math.floor(math.log2(fp.scale * (1 - 2 * rtol))), math.floor(math.log2(fp.scale * (1 + 2 * rtol)))}
        for level in levels:
            size = _cell_size(fp.scale, level, rtol)
            for mean_cell in range(math.floor((fp.mean - slack) / size), math.floor((fp.mean + slack) / size) + 1):
                for max_cell in range(
                    math.floor((fp.stats[4] - slack) / size), math.floor((fp.stats[4] + slack) / size) + 1
                ):
                    cell = grid.get((fp.numel, fp.family, a.constant[i], level, mean_cell, max_cell), [])
                    if len(cell) > 2 * CROWDED_NEIGHBOURS:
                        # A value repeated in every layer (a mask slice, zeros): only the peers nearest in
                        # relative program position can pair in graph order; comparing all is quadratic.
                        at = bisect.bisect_left(cell, round(i * (len(b) - 1) / max(1, len(a) - 1)))
                        cell = cell[max(0, at - CROWDED_NEIGHBOURS) : at + CROWDED_NEIGHBOURS]
                    found.extend(j for j in cell if fp.matches(b.fingerprints[j]))  # type: ignore[arg-type]
        if len(found) > MAX_CANDIDATES:
            where = i / max(1, len(a) - 1)
            found = sorted(found, key=lambda j: abs(j / max(1, len(b) - 1) - where))[:MAX_CANDIDATES]
        pairs.extend((i, j) for j in found)
    return pairs


def longest_increasing_chain(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest chain of pairs increasing on both sides; earliest partners on ties."""
    pairs = sorted(pairs, key=lambda p: (p[0], -p[1]))
    tails: list[int] = []  # smallest b ending a chain of each length
    tail_pair: list[int] = []  # index into pairs of that chain's last pair
    parent: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect.bisect_left(tails, j)
        if pos < len(tails) and tails[pos] == j:
            continue  # an earlier value of A already pairs with j in a chain this long
        parent[k] = tail_pair[pos - 1] if pos > 0 else -1
        if pos == len(tails):
            tails.append(j)
            tail_pair.append(k)
        else:
            tails[pos] = j
            tail_pair[pos] = k
    chain = []
    k = tail_pair[-1] if tail_pair else -1
    while k >= 0:
        chain.append(pairs[k])
        k = parent[k]
    return chain[::-1]


@dataclass(frozen=True)
class Pairing:
    """One-to-one pairs in graph order, plus the values equal to a peer value already taken.

    ``pairs`` maps an operator index of side A to one of side B whose outputs hold the
    same values. A value left out of the one-to-one chain but equal to some value of the
    peer (a duplicated computation, its output returned twice) is an *alias* of it:
    cut points treat equal values as one.
    """

    pairs: dict[int, int]
    a_aliases: dict[int, int] = field(default_factory=dict)  # unpaired A value -> equal B value
    b_aliases: dict[int, int] = field(default_factory=dict)  # unpaired B value -> equal A value


def _aliases(candidates: list[tuple[int, int]], paired: set[int], n_self: int, n_peer: int) -> dict[int, int]:
    """For each unpaired value with candidates, the candidate nearest in relative program position."""
    best: dict[int, tuple[float, int]] = {}
    for i, j in candidates:
        if i in paired:
            continue
        distance = abs(i / max(1, n_self - 1) - j / max(1, n_peer - 1))
        if i not in best or distance < best[i][0]:
            best[i] = (distance, j)
    return {i: j for i, (_, j) in best.items()}


def pair_values(a: Flow, b: Flow) -> Pairing:
    """Pair values of side A with values of side B that hold the same numbers.

    Constant values pair only with constant values, program values with program values,
    each in its own graph order.
    """
    candidates = _candidates(a, b)
    program = [p for p in candidates if not a.constant[p[0]]]
    constant = [p for p in candidates if a.constant[p[0]]]
    pairs = dict(longest_increasing_chain(program) + longest_increasing_chain(constant))
    paired_b = set(pairs.values())
    return Pairing(
        pairs,
        _aliases(candidates, set(pairs), len(a), len(b)),
        _aliases([(j, i) for i, j in candidates], paired_b, len(b), len(a)),
    )


__all__ = ["MAX_CANDIDATES", "Pairing", "pair_values"]
