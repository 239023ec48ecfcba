"""Building the ``magneton.report/1`` JSON report (the public contract in DESIGN.md)."""

from __future__ import annotations

import math
import platform
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from magneton import __version__
from magneton.graph import OpGraph
from magneton.measure.backends import BackendChoice
from magneton.measure.energy_pass import EnergyPassResult, PassOptions

SCHEMA = "magneton.report/1"
ENERGY_SCOPE = "one forward pass of the workload"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    from magneton.measure.backends.cpu_power import cpu_model_name

    return f"{cpu_model_name()} ({platform.machine()})"


def build_report(
    target: str, graph: OpGraph, result: EnergyPassResult, choice: BackendChoice, options: PassOptions
) -> dict[str, Any]:
    """Assemble the report dict; every energy is joules per forward pass, with its provenance."""
    import torch

    info = choice.backend.info()
    total_j = result.forward_energy_j.median
    node_sum_j = result.node_sum_j
    nodes = []
    for node in graph.nodes:
        measured = result.nodes[node.id]
        energy_j = measured.energy_j.median if measured else 0.0
        time_s = measured.time_s.median if measured else 0.0
        nodes.append(
            {
                "id": node.id,
                "op": node.op,
                "energy_j": energy_j,
                "time_s": time_s,
                "expected_energy_j": None,  # filled by the expected-energy regression when trained
                "flops": node.flops,
                "bytes": node.bytes,
                "active_energy_j": max(0.0, energy_j - result.idle_power_w * time_s),
                "energy_ci_j": [measured.energy_j.low, measured.energy_j.high] if measured else [0.0, 0.0],
                "ci_confidence": measured.energy_j.confidence if measured else None,
                "noisy": bool(measured and measured.energy_j.relative_spread > options.noisy_relative_spread),
                "share": energy_j / node_sum_j if node_sum_j > 0 else 0.0,
                "rounds": measured.rounds if measured else 0,
                "measured_as": measured.measured_as if measured else None,
                "zero_cost_reason": node.zero_cost_reason,
                "module_path": node.module_path,
                "module_type": node.module_type,
                "inputs": [meta.to_json() for meta in node.inputs],
                "outputs": [meta.to_json() for meta in node.outputs],
                "source": node.source.to_json() if node.source else None,
            }
        )
    return {
        "schema": SCHEMA,
        "magneton_version": __version__,
        "target": target,
        "device": graph.device,
        "device_description": device_description(graph.device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "backend": {**info.to_json(), "reason": choice.reason, "warnings": list(choice.warnings)},
        "capture": {"method": graph.method, "notes": list(graph.notes)},
        "measurement_notes": list(result.notes),
        "energy_scope": ENERGY_SCOPE,
        "total_energy_j": total_j,
        "total_energy_ci_j": [result.forward_energy_j.low, result.forward_energy_j.high],
        "total_time_s": result.forward_time_s.median,
        "active_energy_j": max(0.0, total_j - result.idle_power_w * result.forward_time_s.median),
        "idle_power_w": result.idle_power_w,
        "node_energy_sum_j": node_sum_j,
        "coverage": _finite(result.coverage),
        "trials": result.trials,
        "min_window_s": result.min_window_s,
        "unique_signatures": result.unique_signatures,
        "nodes": nodes,
        "rollups": {"by_line": rollup_by_line(nodes), "by_op": rollup_by_op(nodes)},
        "findings": [],
    }


def rollup_by_line(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for node in nodes:
        source = node["source"]
        if source is None:
            continue
        key = (source["file"], source["line"])
        group = groups.setdefault(key, {**source, "energy_j": 0.0, "time_s": 0.0, "share": 0.0, "nodes": []})
        group["energy_j"] += node["energy_j"]
        group["time_s"] += node["time_s"]
        group["share"] += node["share"]
        group["nodes"].append(node["id"])
    return sorted(groups.values(), key=lambda g: -g["energy_j"])


def rollup_by_op(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"energy_j": 0.0, "time_s": 0.0, "share": 0.0, "count": 0})
    for node in nodes:
        group = groups[node["op"]]
        group["energy_j"] += node["energy_j"]
        group["time_s"] += node["time_s"]
        group["share"] += node["share"]
        group["count"] += 1
    return sorted(({"op": op, **group} for op, group in groups.items()), key=lambda g: -g["energy_j"])


@dataclass(frozen=True)
class RunComparison:
    """How well two reports of the same workload agree."""

    spearman: float  # rank correlation of per-node energies, over nodes both runs measured
    nodes: int
    total_difference: float  # |total A - total B| / mean of the two
    node_sum_difference: float  # the same for the per-node sums


def _relative_difference(a: float, b: float) -> float:
    mean = (a + b) / 2
    return abs(a - b) / mean if mean > 0 else float("nan")


def compare_runs(first: dict[str, Any], second: dict[str, Any]) -> RunComparison:
    from magneton.measure.stats import spearman

    a = {n["id"]: n["energy_j"] for n in first["nodes"] if n["energy_j"] > 0}
    b = {n["id"]: n["energy_j"] for n in second["nodes"] if n["energy_j"] > 0}
    common = sorted(a.keys() & b.keys())
    rho = spearman([a[i] for i in common], [b[i] for i in common]) if len(common) >= 2 else float("nan")
    return RunComparison(
        spearman=rho,
        nodes=len(common),
        total_difference=_relative_difference(first["total_energy_j"], second["total_energy_j"]),
        node_sum_difference=_relative_difference(first["node_energy_sum_j"], second["node_energy_sum_j"]),
    )


def exit_code(reports: list[dict[str, Any]], errors: int) -> int:
    """DESIGN.md: 0 nothing found, 1 findings, 2 errors."""
    if errors:
        return 2
    return 1 if any(report["findings"] for report in reports) else 0
