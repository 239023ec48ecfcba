"""No operator is lost: regions plus unmatched operators equal both graphs, over random program pairs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from magneton.diff.dominators import dominator_path, live_summaries
from magneton.diff.fingerprint import Fingerprint
from magneton.diff.flow import Flow
from magneton.diff.match import match_flows
from magneton.diff.pairing import pair_values
from magneton.graph import OpNode


def _flow(spec: list[tuple[int, int, int, bool]]) -> Flow:
    """Ops from (value id, first input back-offset, second input back-offset, reads a program input)."""
    nodes, preds, reads = [], [], []
    for k, (value, back1, back2, reads_input) in enumerate(spec):
        nodes.append(
            OpNode(
                id=f"n{k}", op=f"op{value % 3}", piece=0, fx_name=f"n{k}", module_path="", module_type="", source=None
            )
        )
        ps = sorted({k - b for b in (back1, back2) if 0 < b <= k})
        preds.append(tuple(ps))
        reads.append(reads_input or not ps)
    succs: list[list[int]] = [[] for _ in spec]
    constant = []
    for k, ps in enumerate(preds):
        for p in ps:
            succs[p].append(k)
        constant.append(not reads[k] and all(constant[p] for p in ps))
    fingerprints = [Fingerprint(16, "f", (float(v), 1.0, 1.0, 0.0, 2.0, 0.0, 1.0), 1e-4) for v, *_ in spec]
    to_output = [not s for s in succs]
    return Flow(nodes, preds, [tuple(s) for s in succs], to_output, constant, list(fingerprints))


programs = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 4), st.integers(0, 4), st.booleans()), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(programs, programs)
def test_regions_partition_both_programs(spec_a: list, spec_b: list) -> None:
    a, b = _flow(spec_a), _flow(spec_b)
    match = match_flows(a, b, pair_values(a, b))
    assert sorted(i for r in match.regions for i in r.a_ops) == list(range(len(a)))
    assert sorted(j for r in match.regions for j in r.b_ops) == list(range(len(b)))
    assert all(r.a_ops or r.b_ops for r in match.regions)
    for r in match.regions:  # constants and program operators never share a region
        assert len({a.constant[i] for i in r.a_ops} | {b.constant[j] for j in r.b_ops}) == 1


@settings(max_examples=100, deadline=None)
@given(programs)
def test_a_program_matches_itself_operator_by_operator_where_values_are_distinct(spec: list) -> None:
    a = _flow(spec)
    match = match_flows(a, a, pair_values(a, a))
    assert not match.unmatched
    assert all(sorted(r.a_ops) == sorted(r.b_ops) for r in match.regions)


@settings(max_examples=150, deadline=None)
@given(programs)
def test_a_single_live_value_is_on_the_dominator_path(spec: list) -> None:
    # One source (op 0 reads the input), every other op reads an earlier one: a connected program.
    spec = [(v, min(max(b1, 1), k), b2, k == 0) for k, (v, b1, b2, _) in enumerate(spec)]
    flow = _flow(spec)
    sinks = [k for k in range(len(flow)) if flow.to_output[k]]
    path = set(dominator_path(flow.preds, sinks))
    summaries = live_summaries(list(range(len(flow))), flow, {}, side=0)
    for k, (count, _) in enumerate(summaries):
        if count == 1:
            (live,) = [i for i in range(k + 1) if flow.to_output[i] or any(s > k for s in flow.succs[i])]
            assert live in path
