"""The expected-energy stage of ``magneton analyze``: one call that adds predictions, replays and anomalies.

Given a measured graph it loads (or, when there is none, runs the quick)
calibration, predicts every node's expected energy well laid out, replays the
badly laid-out nodes that could matter on well-laid-out inputs, turns the
surprising ones into anomaly findings and writes all of it into the report,
each value with its provenance. ``--learn`` adds the measured nodes to the
calibration's training data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from magneton.errors import MagnetonError
from magneton.expected.anomalies import AnomalyOptions, evidence_for, find_anomalies
from magneton.expected.calibrate import (
    Calibration,
    CalibrationCacheError,
    calibrate,
    fingerprint,
    load_calibration,
    points_from_pass,
)
from magneton.expected.counterfactual import counterfactual_replays, needs_counterfactual
from magneton.expected.features import NodeFeatures
from magneton.findings import sort_findings
from magneton.graph import OpGraph
from magneton.measure.backends.base import EnergyBackend
from magneton.workload import Workload

if TYPE_CHECKING:
    from magneton.measure.energy_pass import EnergyPassResult
    from magneton.measure.options import PassOptions
    from magneton.report.model import Report

ENV_SWITCH = "MAGNETON_EXPECTED"  # "0"/"off": analyze skips expected energy unless asked (test suites, CI)


@dataclass(frozen=True)
class ExpectedOptions:
    enabled: bool | None = None  # None: on, unless $MAGNETON_EXPECTED is 0/off/false
    learn: bool = False  # add this analysis' measured nodes to the training data
    anomaly: AnomalyOptions = field(default_factory=AnomalyOptions)
    counterfactual_trials: int = 5  # every pair must agree (see Counterfactual.consistent): 5 pairs, not 3
    calibration: Calibration | None = None  # a given calibration (tests); None: the cache, else the quick sweep

    def is_enabled(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


def _say(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[cyan]expected energy:[/] {escape(message)}", highlight=False)


def _progress_bar() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def obtain_calibration(
    backend: EnergyBackend, device: str, say: Callable[[str], None] = _say
) -> tuple[Calibration | None, list[str]]:
    """The cached calibration, or a fresh quick one (saying so); None with a note where none can be made."""
    notes: list[str] = []
    device_fingerprint = fingerprint(backend, device)
    try:
        calibration = load_calibration(device_fingerprint)
    except CalibrationCacheError as err:
        say(str(err))
        notes.append(str(err))
        calibration = None
    if calibration is not None:
        return calibration, notes
    if backend.info().name == "replay":
        note = "no calibration for the replayed backend and a trace cannot run a sweep: expected energy skipped"
        say(note)
        return None, [*notes, note]
    say(
        "no calibration for this machine yet: running the quick sweep (~30 s; `magneton calibrate` runs the full "
        "one, `--no-expected` skips this)"
    )
    with _progress_bar() as bar:
        task = bar.add_task("quick calibration", total=1)

        def progress(done: float, total: float, what: str) -> None:
            bar.update(task, completed=done, total=total, description=f"quick calibration: {what}")

        calibration, extra = calibrate(backend, device, quick=True, real_models=False, progress=progress)
    notes.append(f"quick calibration measured now ({len(calibration.points)} points) and cached at {calibration.path}")
    return calibration, notes + extra


def add_expected_energy(
    report: Report,
    graph: OpGraph,
    workload: Workload,
    result: EnergyPassResult,
    backend: EnergyBackend,
    pass_options: PassOptions,
    options: ExpectedOptions,
    say: Callable[[str], None] = _say,
) -> Report:
    """The report with ``expected_energy_j`` (predicted), ideal-layout energies (replayed) and anomaly findings."""
    import msgspec
    import torch

    from magneton.provenance import EnergyProvenance
    from magneton.report.model import ExpectedSummary, HeldOutError

    calibration = options.calibration
    notes: list[str] = []
    if calibration is None:
        calibration, notes = obtain_calibration(backend, graph.device, say)
    if calibration is None:
        return msgspec.structs.replace(report, expected=ExpectedSummary(enabled=False, notes=notes))
    evaluation = calibration.evaluation()
    model = evaluation.model
    heldout = evaluation.headline
    threads = torch.get_num_threads()

    energies: dict[str, tuple[float, float]] = {}
    energy_low: dict[str, float] = {}
    features: dict[str, NodeFeatures] = {}
    for node in graph.nodes:
        measured = result.nodes.get(node.id)
        if node.zero_cost or measured is None:
            continue
        energies[node.id] = (measured.energy_j.median, measured.time_s.median)
        energy_low[node.id] = measured.energy_j.low
        features[node.id] = NodeFeatures.of(node, threads)
    ids = list(features)
    expected = dict(zip(ids, model.expected_j([features[i] for i in ids]), strict=True))

    total_j = report.total_energy_j
    if not (total_j > 0 and math.isfinite(total_j)):
        total_j = result.node_sum_j
    # A node whose whole energy is under the reporting share cannot hold a reportable excess: not replayed.
    floor_j = options.anomaly.min_share * total_j
    candidates = [
        n.id for n in graph.nodes if n.id in energies and needs_counterfactual(n) and energies[n.id][0] >= floor_j
    ]
    try:
        counterfactuals = counterfactual_replays(
            graph, workload, backend, candidates, pass_options, trials=options.counterfactual_trials
        )
    except MagnetonError as err:  # a trace without these replays, a sensor that failed: predictions still stand
        counterfactuals = {}
        notes.append(f"counterfactual layout replays skipped: {err}")

    measured_provenance = report.energy_provenance
    predicted = EnergyProvenance.predicted(
        model.identity,
        model.points,
        heldout.mdape if math.isfinite(heldout.mdape) else float("nan"),
        f"median absolute percentage error on {heldout.on}",
    )
    nodes = []
    for node_report in report.nodes:
        changes: dict[str, Any] = {}
        if node_report.id in expected:
            changes["expected_energy_j"] = expected[node_report.id]
            changes["expected_provenance"] = predicted
        cf = counterfactuals.get(node_report.id)
        if cf is not None:
            changes["ideal_layout_energy_j"] = node_report.energy_j * (1 - cf.gap)
            changes["ideal_layout_provenance"] = node_report.provenance
            changes["ideal_layout_gap"] = cf.gap
        nodes.append(msgspec.structs.replace(node_report, **changes) if changes else node_report)

    findings = find_anomalies(
        graph,
        evidence_for(graph, energies, features, expected, counterfactuals, energy_low),
        total_j,
        model,
        options.anomaly,
        measured_provenance.kind,
        model.identity,
        model_error=heldout.mdape if math.isfinite(heldout.mdape) else 0.0,
    )
    if options.learn:
        added = calibration.add_learned(points_from_pass(graph, result, f"learned:{report.target or ''}"))
        path = calibration.save()
        notes.append(f"--learn: added {added} measured operators to the training data in {path}")
    summary = ExpectedSummary(
        enabled=True,
        model=model.identity,
        held_out=[
            HeldOutError(on=a.on, mdape=_finite(a.mdape), r2=_finite(a.r2), points=a.points)
            for a in (evaluation.shapes, evaluation.models)
        ],
        calibration_path=str(calibration.path) if calibration.path else None,
        calibration_sweep=calibration.sweep,
        calibration_created_utc=calibration.created_utc,
        device_fingerprint=calibration.fingerprint.describe(),
        training_points=model.points,
        factor=options.anomaly.factor,
        min_share=options.anomaly.min_share,
        min_gap=options.anomaly.min_gap,
        counterfactual_replays=len({(cf.original_j, cf.ideal_j) for cf in counterfactuals.values()}),
        notes=notes,
        peak_flops_per_s=model.peak_flops_per_s,
        peak_bytes_per_s=model.peak_bytes_per_s,
    )
    return msgspec.structs.replace(
        report, nodes=nodes, findings=sort_findings([*report.findings, *findings]), expected=summary
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


__all__ = ["ENV_SWITCH", "ExpectedOptions", "add_expected_energy", "obtain_calibration"]
