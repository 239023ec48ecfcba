"""Pairing values across two programs by fingerprint, near-linearly.

Values are bucketed by (element count, dtype kind, constant or not); inside a
bucket they are sorted by mean, so each value of side A is compared only with
the few values of side B whose mean lies within tolerance: near-linear in
graph size instead of all pairs. A fingerprint can fit many values (a mask
built once per layer, zeros, repeated layers with equal weights): the
ambiguity is resolved by graph order, keeping the largest set of pairs that
respects both programs' orders (a longest increasing subsequence), each value
in at most one pair, the earliest when several fit equally.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

from magneton.diff.flow import Flow

# Candidates kept per value of side A when a fingerprint is very common (zeros, masks):
# the nearest in relative program position; bounds the work on degenerate graphs.
MAX_CANDIDATES = 48


def _candidates(a: Flow, b: Flow) -> list[tuple[int, int]]:
    buckets: dict[tuple[int, str, bool], list[tuple[float, int]]] = defaultdict(list)
    for j, fp in enumerate(b.fingerprints):
        if fp is not None:
            buckets[(fp.numel, fp.kind, b.constant[j])].append((fp.mean, j))
    sorted_buckets = {key: sorted(values) for key, values in buckets.items()}
    means = {key: [m for m, _ in values] for key, values in sorted_buckets.items()}
    pairs: list[tuple[int, int]] = []
    for i, fp in enumerate(a.fingerprints):
        if fp is None:
            continue
        key = (fp.numel, fp.kind, a.constant[i])
        bucket = sorted_buckets.get(key)
        if not bucket:
            continue
        # Stats differ by at most rtol * the larger scale; the scales themselves differ by about as much.
        window = 2.0 * fp.rtol * fp.scale
        lo = bisect.bisect_left(means[key], fp.mean - window)
        hi = bisect.bisect_right(means[key], fp.mean + window)
        found = [j for _, j in bucket[lo:hi] if fp.matches(b.fingerprints[j])]  # type: ignore[arg-type]
        if len(found) > MAX_CANDIDATES:
            where = i / max(1, len(a) - 1)
            found = sorted(found, key=lambda j: abs(j / max(1, len(b) - 1) - where))[:MAX_CANDIDATES]
        pairs.extend((i, j) for j in found)
    return pairs


def _monotone(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
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
    pairs = dict(_monotone(program) + _monotone(constant))
    paired_b = set(pairs.values())
    return Pairing(
        pairs,
        _aliases(candidates, set(pairs), len(a), len(b)),
        _aliases([(j, i) for i, j in candidates], paired_b, len(b), len(a)),
    )


__all__ = ["MAX_CANDIDATES", "Pairing", "pair_values"]
