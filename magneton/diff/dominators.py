"""Cut points: values every path from the program's inputs to its outputs must pass through.

In a topological order of a program, the values *live across* position p are
those produced at or before p and read after it (or returned). When a single
value is live across p, every source-to-sink path passes through it: it is a
dominator of the sink, on the source-to-sink dominator path. A residual
connection keeps two values live (the block's input and its branch), so the
dominator path alone would put a whole transformer block in one region; a
*set* of live values whose members are all paired with the live set of the
peer at some position is a cut just as good, since everything after it
depends on the program's inputs only through that set. Both sides are swept
once; the live set is summarised by (count, sum of pair tokens), so a cut is a
position whose summary equals one of the peer's: linear time.

Values that come from outside the swept sequence (program inputs, parameters,
constants, a region's entries) are available everywhere and never live.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from magneton.diff.flow import Flow
from magneton.diff.pairing import longest_increasing_chain

_MASK = (1 << 64) - 1


def live_summaries(seq: Sequence[int], flow: Flow, tokens: dict[int, int], side: int) -> list[tuple[int, int]]:
    """(count, token sum) of the values live after each position of ``seq`` (operator indices, in order).

    A value read outside ``seq`` after it, or returned by the program, stays live to the end.
    ``tokens`` gives paired values a token shared with their partner; any other value gets
    a random one, so a live set containing it matches nothing; ``side`` keeps the two sides'
    random streams apart.
    """
    n = len(seq)
    position = {op: k for k, op in enumerate(seq)}
    rng = random.Random(0x5EED + side)
    dies_at: list[list[int]] = [[] for _ in range(n)]
    token_at = [0] * n
    summaries: list[tuple[int, int]] = []
    count, total = 0, 0
    for k, op in enumerate(seq):
        for dying in dies_at[k]:
            count -= 1
            total = (total - token_at[dying]) & _MASK
        last = k
        for s in flow.succs[op]:
            last = max(last, position.get(s, n))
        if flow.to_output[op]:
            last = n
        if last > k:
            token = tokens.get(op)
            token_at[k] = token if token is not None else rng.getrandbits(64) | (1 << 63)
            count += 1
            total = (total + token_at[k]) & _MASK
            if last < n:
                dies_at[last].append(k)
        summaries.append((count, total))
    return summaries


def aligned_cuts(summaries_a: list[tuple[int, int]], summaries_b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Positions (p, q) whose live sets pair up, as one chain increasing on both sides."""
    first_b: dict[tuple[int, int], int] = {}
    for q, summary in enumerate(summaries_b):
        if summary[0] > 0:
            first_b.setdefault(summary, q)
    candidates: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for p, summary in enumerate(summaries_a):
        if summary[0] > 0 and summary in first_b and summary not in seen:
            seen.add(summary)
            candidates.append((p, first_b[summary]))
    # Candidates increase in p and their q are distinct (first indices of distinct summaries).
    return longest_increasing_chain(candidates)


def immediate_dominators(preds: Sequence[Sequence[int]]) -> list[int]:
    """Immediate dominator of every node of a DAG given in topological order; -1 is the virtual source.

    Nodes without predecessors hang off the virtual source (Cooper, Harvey and Kennedy's
    intersection walk; one pass suffices on a DAG in topological order).
    """
    idom = [-1] * len(preds)

    def intersect(x: int, y: int) -> int:
        while x != y:
            if x > y:
                x = idom[x]
            else:
                y = idom[y]
            if x < 0 or y < 0:
                return -1
        return x

    for v, ps in enumerate(preds):
        if not ps:
            idom[v] = -1
            continue
        dom = ps[0]
        for p in ps[1:]:
            dom = intersect(dom, p)
            if dom < 0:
                break
        idom[v] = dom
    return idom


def dominator_path(preds: Sequence[Sequence[int]], sinks: Sequence[int]) -> list[int]:
    """Nodes on the source-to-sink dominator path (the sink being a virtual node reading ``sinks``)."""
    if not sinks:
        return []
    idom = immediate_dominators(preds)

    def intersect(x: int, y: int) -> int:
        while x != y and x >= 0 and y >= 0:
            if x > y:
                x = idom[x]
            else:
                y = idom[y]
        return x if x == y else -1

    dom = sinks[0]
    for s in sinks[1:]:
        dom = intersect(dom, s)
    path = []
    while dom >= 0:
        path.append(dom)
        dom = idom[dom]
    return path[::-1]


__all__ = ["aligned_cuts", "dominator_path", "immediate_dominators", "live_summaries"]
