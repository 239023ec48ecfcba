"""The diff report: ``magneton.report/1`` with ``targets: [A, B]``, both totals, ``regions`` and findings."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from magneton import __version__
from magneton.diff.engine import DiffResult, RegionResult, SideResult, short_op

SCHEMA = "magneton.report/1"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _plain(value: object) -> object:
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def _node(side: SideResult, index: int) -> dict[str, Any]:
    node = side.side.flow.nodes[index]
    return {
        "id": node.id,
        "op": node.op,
        "energy_j": side.node_energy_j.get(node.id, 0.0),
        "zero_cost": node.zero_cost,
        "source": node.source.to_json() if node.source else None,
    }


def _region(result: RegionResult, sides: tuple[SideResult, SideResult]) -> dict[str, Any]:
    a, b = sides
    region = result.region
    verdict = result.verdict
    return {
        "id": result.index,
        "part": region.part,
        "matched": region.matched,
        "a_nodes": [a.side.flow.nodes[i].id for i in region.a_ops],
        "b_nodes": [b.side.flow.nodes[i].id for i in region.b_ops],
        "a_ops": [short_op(a.side.flow.nodes[i].op) for i in region.a_ops],
        "b_ops": [short_op(b.side.flow.nodes[i].op) for i in region.b_ops],
        "a_energy_j": result.a_energy_j,
        "b_energy_j": result.b_energy_j,
        "a_energy_ci_j": list(result.a_ci_j),
        "b_energy_ci_j": list(result.b_ci_j),
        "a_time_s": result.a_time_s,
        "b_time_s": result.b_time_s,
        "ratio": _finite(verdict.ratio) if verdict else None,
        "verdict": verdict.verdict if verdict else None,
        "costly_side": verdict.costly if verdict else None,
        "excess_energy_j": verdict.excess_energy_j if verdict else None,
        "reason": verdict.reason if verdict else "unmatched: its results do not pair with the peer's",
        "a_split": [_node(a, i) for i in region.a_ops],
        "b_split": [_node(b, i) for i in region.b_ops],
        "knobs": result.knob.to_json() if result.knob else None,
    }


def build_diff_report(result: DiffResult) -> dict[str, Any]:
    """The report dict; every energy is joules per forward pass (totals) or per region call."""
    import torch

    from magneton.report.build import device_description

    info = result.backend_info
    a, b = result.sides
    sides = []
    for side in result.sides:
        label = side.side.label
        forward = result.replay.forward[label]
        ops = len(side.side.flow)
        in_matched = sum(len(r.a_ops if label == "A" else r.b_ops) for r in result.match.matched)
        sides.append(
            {
                "label": label,
                "target": side.side.target,
                "total_energy_j": forward.energy_j.median,
                "total_energy_ci_j": [forward.energy_j.low, forward.energy_j.high],
                "total_time_s": forward.time_s.median,
                "region_energy_sum_j": result.replay.region_sum_j(label),
                "region_coverage": _finite(result.replay.coverage(label)),
                "operator_pass_total_j": side.op_pass_total_j,
                "capture": {"method": side.side.graph.method, "notes": list(side.side.graph.notes)},
                "ops": ops,
                "ops_in_matched_regions": in_matched,
                "matched_share": in_matched / ops if ops else 1.0,
                "settings": {
                    k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in side.side.settings.values
                },
            }
        )
    unmatched_a = [a.side.flow.nodes[i].id for r in result.match.unmatched for i in r.a_ops]
    unmatched_b = [b.side.flow.nodes[i].id for r in result.match.unmatched for i in r.b_ops]
    difference = result.output_difference
    return {
        "schema": SCHEMA,
        "kind": "diff",
        "magneton_version": __version__,
        "targets": list(result.targets),
        "device": a.side.graph.device,
        "device_description": device_description(a.side.graph.device),
        "torch_version": torch.__version__,
        "backend": {**info.to_json(), "reason": result.backend_reason, "warnings": list(result.backend_warnings)},
        "energy_scope": "totals: one forward pass; regions: one call of the region, replayed in context",
        "threshold": result.threshold,
        "total_energy_j": [sides[0]["total_energy_j"], sides[1]["total_energy_j"]],
        "total_time_s": [sides[0]["total_time_s"], sides[1]["total_time_s"]],
        "sides": sides,
        "setting_differences": [d.to_json() for d in result.setting_differences],
        "outputs": {
            "largest_relative_difference": _finite(difference.relative) if difference else None,
            "where": difference.where if difference else None,
        },
        "matching": {
            "time_s": result.matching_time_s,
            "pairs": len(result.match.pairing.pairs),
            "regions": len(result.match.regions),
            "matched_regions": len(result.match.matched),
        },
        "regions": [_region(r, result.sides) for r in result.regions],
        "unmatched": {"a_nodes": unmatched_a, "b_nodes": unmatched_b},
        "measurement_notes": list(result.notes),
        "findings": [msgspec.to_builtins(f) for f in result.findings],
    }


def diff_exit_code(report: dict[str, Any]) -> int:
    """1 when a region is waste (each waste region is a finding), else 0."""
    return 1 if report["findings"] else 0


__all__ = ["build_diff_report", "diff_exit_code"]
