"""The diff report: a ``magneton.report/1`` Report with ``targets: [A, B]``, both totals, regions, findings."""

from __future__ import annotations

import math

from magneton import __version__
from magneton.diff.engine import DiffResult, RegionResult, SideResult, short_op
from magneton.provenance import provenance_of_backend
from magneton.report.model import (
    SCHEMA,
    CaptureSummary,
    DiffSide,
    DiffSummary,
    NodeSource,
    OperatorShare,
    Region,
    Report,
    SettingDifference,
    UnmatchedRegion,
)

ENERGY_SCOPE = (
    "total_energy_j: one forward pass of side A (diff.sides has both); regions: one call of the region, "
    "replayed as a unit in context"
)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _plain(value: object) -> object:
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def _split(side: SideResult, ops: tuple[int, ...]) -> list[OperatorShare]:
    out = []
    for i in ops:
        node = side.side.flow.nodes[i]
        source = node.source
        out.append(
            OperatorShare(
                id=node.id,
                op=node.op,
                energy_j=side.node_energy_j.get(node.id, 0.0),
                zero_cost=node.zero_cost,
                source=NodeSource(file=source.file, line=source.line, function=source.function, code=source.code)
                if source
                else None,
            )
        )
    return out


def _region(result: RegionResult, sides: tuple[SideResult, SideResult], provenance: object) -> Region:
    a, b = sides
    region, verdict = result.region, result.verdict
    assert verdict is not None  # unmatched regions are reported apart
    return Region(
        a_nodes=[a.side.flow.nodes[i].id for i in region.a_ops],
        b_nodes=[b.side.flow.nodes[i].id for i in region.b_ops],
        a_energy_j=result.a_energy_j,
        b_energy_j=result.b_energy_j,
        ratio=_finite(verdict.ratio),
        verdict=verdict.verdict,
        a_provenance=provenance,  # type: ignore[arg-type]
        b_provenance=provenance,  # type: ignore[arg-type]
        a_time_s=result.a_time_s,
        b_time_s=result.b_time_s,
        id=result.index,
        part=region.part,
        a_ops=[short_op(a.side.flow.nodes[i].op) for i in region.a_ops],
        b_ops=[short_op(b.side.flow.nodes[i].op) for i in region.b_ops],
        a_energy_ci_j=result.a_ci_j,
        b_energy_ci_j=result.b_ci_j,
        costly_side=verdict.costly,  # type: ignore[arg-type]
        excess_energy_j=verdict.excess_energy_j,
        reason=verdict.reason,
        a_split=_split(a, region.a_ops),
        b_split=_split(b, region.b_ops),
        knobs=result.knob.to_json() if result.knob else None,
    )


def build_diff_report(result: DiffResult) -> Report:
    """The typed report of a diff; ``Report.to_dict()`` gives the JSON."""
    import torch

    from magneton.report.build import backend_summary, device_description

    info = result.backend_info.to_json()
    provenance = provenance_of_backend(info)
    a, b = result.sides
    sides = []
    for side in result.sides:
        label = side.side.label
        forward = result.replay.forward[label]
        ops = len(side.side.flow)
        in_matched = sum(len(r.a_ops if label == "A" else r.b_ops) for r in result.match.matched)
        sides.append(
            DiffSide(
                label=label,  # type: ignore[arg-type]
                target=side.side.target,
                total_energy_j=forward.energy_j.median,
                total_energy_ci_j=(forward.energy_j.low, forward.energy_j.high),
                total_time_s=forward.time_s.median,
                region_energy_sum_j=result.replay.region_sum_j(label),
                region_coverage=_finite(result.replay.coverage(label)),
                operator_pass_total_j=side.op_pass_total_j,
                capture=CaptureSummary(method=side.side.graph.method, notes=list(side.side.graph.notes)),
                ops=ops,
                ops_in_matched_regions=in_matched,
                matched_share=in_matched / ops if ops else 1.0,
                settings={k: _plain(v) for k, v in side.side.settings.values},
            )
        )
    unmatched = [
        UnmatchedRegion(
            part=r.region.part,
            a_nodes=[a.side.flow.nodes[i].id for i in r.region.a_ops],
            b_nodes=[b.side.flow.nodes[i].id for i in r.region.b_ops],
            a_ops=[short_op(a.side.flow.nodes[i].op) for i in r.region.a_ops],
            b_ops=[short_op(b.side.flow.nodes[i].op) for i in r.region.b_ops],
            a_energy_j=r.a_energy_j,
            b_energy_j=r.b_energy_j,
        )
        for r in result.regions
        if r.verdict is None
    ]
    difference = result.output_difference
    forward_a = result.replay.forward["A"]
    return Report(
        schema=SCHEMA,
        magneton_version=__version__,
        target=None,
        targets=list(result.targets),
        device=a.side.graph.device,
        device_description=device_description(a.side.graph.device),
        torch_version=str(torch.__version__),
        threads=torch.get_num_threads(),
        backend=backend_summary(info, result.backend_reason, result.backend_warnings),
        energy_provenance=provenance,
        capture=CaptureSummary(method=a.side.graph.method, notes=list(a.side.graph.notes)),
        measurement_notes=list(result.notes),
        energy_scope=ENERGY_SCOPE,
        total_energy_j=forward_a.energy_j.median,
        total_energy_ci_j=(forward_a.energy_j.low, forward_a.energy_j.high),
        total_energy_ci_confidence=forward_a.energy_j.confidence,
        total_time_s=forward_a.time_s.median,
        node_energy_sum_j=sum(a.node_energy_j.values()),
        coverage=_finite(sum(a.node_energy_j.values()) / forward_a.energy_j.median)
        if a.node_energy_j and forward_a.energy_j.median > 0
        else None,
        trials=len(forward_a.energy_j.samples),
        ci_method="order-statistic CI of the median over interleaved trials",
        nodes=[],
        findings=list(result.findings),
        regions=[_region(r, result.sides, provenance) for r in result.regions if r.verdict is not None],
        diff=DiffSummary(
            sides=sides,
            threshold=result.threshold,
            setting_differences=[
                SettingDifference(name=d.name, a=_plain(d.a), b=_plain(d.b)) for d in result.setting_differences
            ],
            matching_time_s=result.matching_time_s,
            pairs=len(result.match.pairing.pairs),
            unmatched=unmatched,
            outputs_largest_relative_difference=_finite(difference.relative) if difference else None,
            outputs_where=difference.where if difference else None,
        ),
    )


def diff_exit_code(report: Report) -> int:
    """1 when a region is waste (each waste region is a finding), else 0."""
    return 1 if report.findings else 0


__all__ = ["build_diff_report", "diff_exit_code"]
