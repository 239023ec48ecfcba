"""Matched regions: both programs cut at paired values, refined recursively.

Each program is split into its constant part (values computed from parameters
and constants alone, such as masks) and the program proper. Each part is swept
once (``dominators.live_summaries``); positions whose live values pair up are
cut points, and the operators between consecutive cuts, side branches
included, form a matched region. A region is then refined: its operators are
re-ordered, on side A, to follow the order in which side B produces the paired
values (two programs may run independent branches in different orders), and
swept again with the region's own entries as inputs. This repeats until no
region splits.

Every operator of both programs ends in exactly one region. Operators after the
last cut whose results do not pair with the peer's form an *unmatched* region.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from magneton.diff.dominators import aligned_cuts, live_summaries
from magneton.diff.flow import Flow
from magneton.diff.pairing import Pairing

_MAX_DEPTH = 12


@dataclass(frozen=True)
class Region:
    a_ops: tuple[int, ...]  # operator indices of side A, in program order
    b_ops: tuple[int, ...]
    matched: bool  # False: its results do not pair with the peer's (listed as unmatched)
    part: str  # "program" or "constants"


@dataclass(frozen=True)
class Match:
    regions: tuple[Region, ...]
    pairing: Pairing

    @property
    def matched(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if r.matched)

    @property
    def unmatched(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if not r.matched)


def _tokens(pairing: Pairing) -> tuple[dict[int, int], dict[int, int]]:
    """Equal tokens for equal values: pairs share one, an alias takes its peer value's."""
    import random

    rng = random.Random(0xD1FF)
    a_tokens: dict[int, int] = {}
    b_tokens: dict[int, int] = {}
    for i, j in pairing.pairs.items():
        token = rng.getrandbits(63)  # top bit clear: never equal to an unpaired value's token
        a_tokens[i], b_tokens[j] = token, token
    for i, j in pairing.a_aliases.items():
        a_tokens[i] = b_tokens.setdefault(j, rng.getrandbits(63))
    for j, i in pairing.b_aliases.items():
        b_tokens[j] = a_tokens.setdefault(i, rng.getrandbits(63))
    return a_tokens, b_tokens


def _split(
    a_seq: Sequence[int],
    b_seq: Sequence[int],
    a: Flow,
    b: Flow,
    tokens: tuple[dict[int, int], dict[int, int]],
) -> tuple[list[tuple[list[int], list[int]]], bool]:
    """Regions between aligned cuts of two sequences, and whether the tails (exits) pair up."""
    summaries_a = live_summaries(a_seq, a, tokens[0], side=1)
    summaries_b = live_summaries(b_seq, b, tokens[1], side=2)
    cuts = aligned_cuts(summaries_a, summaries_b)
    pieces = []
    start_a = start_b = 0
    for p, q in cuts:
        pieces.append((list(a_seq[start_a : p + 1]), list(b_seq[start_b : q + 1])))
        start_a, start_b = p + 1, q + 1
    tail = (list(a_seq[start_a:]), list(b_seq[start_b:]))
    exits_pair = (summaries_a[-1] if summaries_a else (0, 0)) == (summaries_b[-1] if summaries_b else (0, 0))
    if tail[0] or tail[1]:
        pieces.append(tail)
    return pieces, exits_pair


def _follow_peer_order(ops: list[int], flow: Flow, peer_rank: dict[int, int]) -> list[int]:
    """A topological order of ``ops`` that produces paired values in the peer's order where it can."""
    inside = set(ops)
    unranked = len(peer_rank) + 1
    target = {op: peer_rank.get(op, unranked) for op in ops}
    for op in reversed(ops):  # an op is due when the earliest paired value it feeds is
        for s in flow.succs[op]:
            if s in inside and target[s] < target[op]:
                target[op] = target[s]
    waiting = {op: sum(1 for p in flow.preds[op] if p in inside) for op in ops}
    ready = [(target[op], op) for op in ops if waiting[op] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, op = heapq.heappop(ready)
        order.append(op)
        for s in flow.succs[op]:
            if s in inside:
                waiting[s] -= 1
                if waiting[s] == 0:
                    heapq.heappush(ready, (target[s], s))
    return order


def _refine(
    a_ops: list[int],
    b_ops: list[int],
    a: Flow,
    b: Flow,
    tokens: tuple[dict[int, int], dict[int, int]],
    pairs: dict[int, int],
    depth: int,
) -> list[tuple[list[int], list[int]]]:
    if depth >= _MAX_DEPTH or len(a_ops) < 2 or len(b_ops) < 2:
        return [(a_ops, b_ops)]
    b_rank = {op: k for k, op in enumerate(b_ops)}
    # Only this region's pairs: looking through all of them per region would make refinement quadratic.
    a_rank = {i: b_rank[pairs[i]] for i in a_ops if i in pairs and pairs[i] in b_rank}
    a_seq = _follow_peer_order(a_ops, a, a_rank)
    pieces, _ = _split(a_seq, b_ops, a, b, tokens)
    if len(pieces) < 2:
        return [(a_ops, b_ops)]
    out = []
    for piece_a, piece_b in pieces:
        out.extend(_refine(sorted(piece_a), piece_b, a, b, tokens, pairs, depth + 1))
    return out


def _match_part(
    a_seq: list[int],
    b_seq: list[int],
    a: Flow,
    b: Flow,
    tokens: tuple[dict[int, int], dict[int, int]],
    pairs: dict[int, int],
    part: str,
) -> list[Region]:
    if not a_seq and not b_seq:
        return []
    pieces, exits_pair = _split(a_seq, b_seq, a, b, tokens)
    regions = []
    for k, (piece_a, piece_b) in enumerate(pieces):
        is_tail = k == len(pieces) - 1
        matched = exits_pair or not is_tail
        if not matched:
            regions.append(Region(tuple(piece_a), tuple(piece_b), False, part))
            continue
        for sub_a, sub_b in _refine(piece_a, piece_b, a, b, tokens, pairs, 0):
            regions.append(Region(tuple(sorted(sub_a)), tuple(sorted(sub_b)), True, part))
    return regions


def match_flows(a: Flow, b: Flow, pairing: Pairing) -> Match:
    """Cut both programs into corresponding regions; every operator lands in exactly one."""
    tokens = _tokens(pairing)
    pairs = pairing.pairs
    regions = _match_part(
        [i for i in range(len(a)) if a.constant[i]],
        [j for j in range(len(b)) if b.constant[j]],
        a,
        b,
        tokens,
        pairs,
        "constants",
    )
    regions += _match_part(
        [i for i in range(len(a)) if not a.constant[i]],
        [j for j in range(len(b)) if not b.constant[j]],
        a,
        b,
        tokens,
        pairs,
        "program",
    )
    return Match(tuple(regions), pairing)


__all__ = ["Match", "Region", "match_flows"]
