"""Building the typed ``magneton.report/1`` report from a captured graph and its energy pass."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from magneton import __version__
from magneton.graph import OpGraph, SourceLocation, TensorMeta
from magneton.hardware import device_description
from magneton.measure.backends import BackendChoice
from magneton.measure.drift import DriftSummary
from magneton.measure.energy_pass import EnergyPassResult, PassOptions
from magneton.provenance import EnergyProvenance, provenance_of_backend
from magneton.report.model import (
    SCHEMA,
    BackendSummary,
    CaptureSummary,
    Contention,
    MachineDrift,
    MeasurementCost,
    Node,
    NodeSource,
    PageFaults,
    PhaseEnergy,
    Report,
    RollupLine,
    RollupOp,
    Rollups,
    TensorInfo,
)

ENERGY_SCOPE = "one forward pass of the workload"
TRAIN_ENERGY_SCOPE = "one training step (forward, loss, backward, optimizer step)"
PHASES = ("forward", "backward", "optimizer")
CI_METHOD = "order-statistic confidence interval of the median over trials"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _tensor(meta: TensorMeta) -> TensorInfo:
    return TensorInfo(
        shape=list(meta.shape),
        dtype=meta.dtype,
        stride=list(meta.stride),
        contiguous=meta.contiguous,
        device=meta.device,
    )


def _source(source: SourceLocation | None) -> NodeSource | None:
    if source is None:
        return None
    return NodeSource(file=source.file, line=source.line, function=source.function, code=source.code)


def backend_summary(info: Mapping[str, Any], reason: str, warnings: Sequence[str]) -> BackendSummary:
    """The report's backend block from ``BackendInfo.to_json()`` and why that backend was chosen."""
    return BackendSummary(
        name=info["name"],
        provenance=info["provenance"],
        sensor=info["sensor"],
        min_window_s=info["min_window_s"],
        resolution_j=info["resolution_j"],
        update_period_s=info["update_period_s"],
        formula=info["formula"],
        constants=info["constants"],
        notes=info["notes"],
        reason=reason,
        warnings=list(warnings),
    )


def build_report(
    target: str,
    graph: OpGraph,
    result: EnergyPassResult,
    choice: BackendChoice,
    options: PassOptions,
    extra_notes: Sequence[str] = (),
) -> Report:
    """Assemble the report; every energy is joules per forward pass, with its provenance."""
    import torch

    info = choice.backend.info().to_json()
    provenance = provenance_of_backend(info)
    total_j = result.forward_energy_j.median
    node_sum_j = result.node_sum_j
    nodes = []
    for node in graph.nodes:
        measured = result.nodes[node.id]
        energy_j = measured.energy_j.median if measured else 0.0
        time_s = measured.time_s.median if measured else 0.0
        nodes.append(
            Node(
                id=node.id,
                op=node.op,
                energy_j=energy_j,
                time_s=time_s,
                expected_energy_j=None,  # filled by the expected-energy regression when trained
                source=_source(node.source),
                provenance=provenance,
                active_energy_j=max(0.0, energy_j - result.idle_power_w * time_s),
                energy_ci_j=(measured.energy_j.low, measured.energy_j.high) if measured else (0.0, 0.0),
                ci_confidence=measured.energy_j.confidence if measured else None,
                trials=len(measured.energy_j.samples) if measured else None,
                noisy=bool(measured and measured.energy_j.relative_spread > options.noisy_relative_spread),
                share=energy_j / node_sum_j if node_sum_j > 0 else 0.0,
                rounds=measured.rounds if measured else 0,
                measured_as=measured.measured_as if measured else None,
                replayed_as=measured.replayed_as if measured else None,
                zero_cost_reason=node.zero_cost_reason,
                module_path=node.module_path,
                module_type=node.module_type,
                inputs=[_tensor(meta) for meta in node.inputs],
                outputs=[_tensor(meta) for meta in node.outputs],
                phase=node.phase,  # type: ignore[arg-type]  # OpNode holds one of PHASES
                forward_node=node.forward_node,
                minor_faults_per_call=measured.minor_faults_per_call if measured else 0.0,
                major_faults_per_call=measured.major_faults_per_call if measured else 0.0,
                fault_energy_share=measured.fault_time_share if measured else 0.0,
                contended=measured.contended if measured else False,
                run_delay_s_per_s=measured.run_delay_s_per_s if measured else None,
                step=node.call,
                flops=node.flops,
                bytes=node.bytes,
            )
        )
    training = any(node.phase is not None for node in nodes)
    return Report(
        schema=SCHEMA,
        magneton_version=__version__,
        target=target,
        device=graph.device,
        device_description=device_description(graph.device),
        torch_version=str(torch.__version__),
        threads=torch.get_num_threads(),
        backend=backend_summary(info, choice.reason, choice.warnings),
        energy_provenance=provenance,
        capture=CaptureSummary(method=graph.method, notes=list(graph.notes)),
        measurement_notes=[*result.notes, *extra_notes],
        energy_scope=TRAIN_ENERGY_SCOPE if training else ENERGY_SCOPE,
        total_energy_j=total_j,
        total_energy_ci_j=(result.forward_energy_j.low, result.forward_energy_j.high),
        total_energy_ci_confidence=result.forward_energy_j.confidence,
        total_energy_trials=len(result.forward_energy_j.samples),
        total_time_s=result.forward_time_s.median,
        active_energy_j=max(0.0, total_j - result.idle_power_w * result.forward_time_s.median),
        idle_power_w=result.idle_power_w,
        node_energy_sum_j=node_sum_j,
        coverage=_finite(result.coverage),
        trials=result.trials,
        ci_method=CI_METHOD,
        noisy_relative_spread=options.noisy_relative_spread,
        min_window_s=result.min_window_s,
        unique_signatures=result.unique_signatures,
        input_restore_energy_j=(
            result.input_restore_energy_j.median if result.input_restore_energy_j is not None else None
        ),
        nodes=nodes,
        rollups=Rollups(by_line=rollup_by_line(nodes, provenance), by_op=rollup_by_op(nodes, provenance)),
        findings=[],
        phases=rollup_by_phase(nodes, provenance) if training else None,
        steps=max((n.call for n in graph.nodes if n.call is not None), default=None),
        allocator=result.allocator,
        page_faults=PageFaults(
            minor_per_call=result.forward_minor_faults_per_call,
            major_per_call=result.forward_major_faults_per_call,
            energy_share=result.forward_fault_time_share,
            fault_cost_s=result.page_fault_cost_s,
            node_minor_per_call=sum(n.minor_faults_per_call for n in nodes),
        ),
        contention=_contention(result),
        machine_drift=machine_drift(result.drift),
        measurement_cost=MeasurementCost(
            wall_s=result.wall_s, floor_s=result.floor_s, min_trials=result.min_trials, max_trials=options.trials
        ),
    )


def _contention(result: EnergyPassResult) -> Contention | None:
    summary = result.contention
    if summary is None:
        return None
    return Contention(
        windows=summary.windows,
        contended_windows=summary.contended_windows,
        remeasured_windows=summary.remeasured_windows,
        run_delay_s_per_s=summary.run_delay_s_per_s,
        others_busy_cores=summary.others_busy_cores,
        threshold_s_per_s=summary.threshold_s_per_s,
        warning=summary.warning,
    )


def machine_drift(drift: DriftSummary | None) -> MachineDrift | None:
    """The report's view of the thread-synchronisation reference's readings."""
    if drift is None:
        return None
    return MachineDrift(
        reference=drift.reference,
        readings_s=drift.readings_s,
        spread=drift.spread,
        threshold=drift.threshold,
        warning=drift.warning,
    )


def rollup_by_phase(nodes: list[Node], provenance: EnergyProvenance | None = None) -> list[PhaseEnergy]:
    """A training step's operators summed per phase, in step order."""
    return [
        PhaseEnergy(
            phase=phase,  # type: ignore[arg-type]  # one of PHASES
            energy_j=sum(n.energy_j for n in nodes if n.phase == phase),
            time_s=sum(n.time_s for n in nodes if n.phase == phase),
            share=sum(n.share for n in nodes if n.phase == phase),
            count=sum(1 for n in nodes if n.phase == phase),
            provenance=provenance,
        )
        for phase in PHASES
    ]


def rollup_by_line(nodes: list[Node], provenance: EnergyProvenance | None = None) -> list[RollupLine]:
    """Operators grouped by the source line that produced them, most energy first."""
    groups: dict[tuple[str, int], list[Node]] = {}
    for node in nodes:
        if node.source is not None:
            groups.setdefault((node.source.file, node.source.line), []).append(node)
    rollups = []
    for members in groups.values():
        source = members[0].source
        assert source is not None
        training = any(n.phase is not None for n in members)

        def phase_j(phase: str, members: list[Node] = members, training: bool = training) -> float | None:
            return sum(n.energy_j for n in members if n.phase == phase) if training else None

        rollups.append(
            RollupLine(
                file=source.file,
                line=source.line,
                function=source.function,
                code=source.code,
                energy_j=sum(n.energy_j for n in members),
                time_s=sum(n.time_s for n in members),
                share=sum(n.share for n in members),
                nodes=[n.id for n in members],
                provenance=provenance,
                forward_energy_j=phase_j("forward"),
                backward_energy_j=phase_j("backward"),
                optimizer_energy_j=phase_j("optimizer"),
            )
        )
    return sorted(rollups, key=lambda g: -g.energy_j)


def rollup_by_op(nodes: list[Node], provenance: EnergyProvenance | None = None) -> list[RollupOp]:
    """Operators grouped by ATen kind, most energy first."""
    groups: dict[str, list[Node]] = defaultdict(list)
    for node in nodes:
        groups[node.op].append(node)
    rollups = [
        RollupOp(
            op=op,
            energy_j=sum(n.energy_j for n in members),
            time_s=sum(n.time_s for n in members),
            share=sum(n.share for n in members),
            count=len(members),
            provenance=provenance,
        )
        for op, members in groups.items()
    ]
    return sorted(rollups, key=lambda g: -g.energy_j)
