"""The whole diff: two targets -> same-computation check -> capture -> match -> region energies -> findings."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from magneton.diff.flow import build_flow
from magneton.diff.knobs import KnobDiagnosis, diagnose
from magneton.diff.match import Match, Region, match_flows
from magneton.diff.outputs import Difference, check_same_inputs, check_same_outputs, largest_difference
from magneton.diff.pairing import pair_values
from magneton.diff.region_replay import (
    Calibrator,
    ReplayOptions,
    ReplayResult,
    Side,
    build_programs,
    replay_regions,
)
from magneton.diff.settings import SettingDifference, Settings, applied, apply_settings, differences, record_settings
from magneton.diff.verdict import Verdict, judge
from magneton.findings import Finding, FindingSource, sort_findings
from magneton.graph import OpNode, SourceLocation
from magneton.measure.options import Allocator
from magneton.workload import Workload


@dataclass(frozen=True)
class DiffOptions:
    threshold: float = 0.10
    allow_different_outputs: bool = False
    backend: str = "auto"
    device: str | None = None
    trials: int = 5
    replay_trials: int | None = None  # interleaved trials of the region replay that judges; None: ``trials``
    min_window_s: float | None = None
    watts_per_core: float | None = None
    trace_path: Any = None  # replay input
    op_split: bool = True  # run each side's per-operator energy pass for the split inside regions
    knobs: bool = True
    allocator: Allocator = "settled"  # as analyze: see magneton.measure.allocator


@dataclass
class SideResult:
    side: Side
    node_energy_j: dict[str, float]  # per-operator energies from the side's energy pass (empty when skipped)
    op_pass_total_j: float | None  # whole pass from the energy pass, for reference


@dataclass
class RegionResult:
    index: int
    region: Region
    a_energy_j: float
    b_energy_j: float
    a_time_s: float
    b_time_s: float
    a_ci_j: tuple[float, float]
    b_ci_j: tuple[float, float]
    verdict: Verdict | None  # None for unmatched regions
    knob: KnobDiagnosis | None = None


@dataclass
class DiffResult:
    targets: tuple[str, str]
    sides: tuple[SideResult, SideResult]
    match: Match
    matching_time_s: float
    replay: ReplayResult
    regions: list[RegionResult]
    findings: list[Finding]
    setting_differences: list[SettingDifference]
    output_difference: Difference | None
    backend_info: Any
    backend_reason: str
    backend_warnings: tuple[str, ...]
    threshold: float
    notes: list[str] = field(default_factory=list)


def load_sides(target_a: str, target_b: str, loader: Callable[[str], Workload] | None = None) -> list[Any]:
    """Build both workloads, each side's global settings recorded after its build and undone before the next."""
    load = loader or load_diff_target
    baseline = record_settings()
    out = []
    try:
        for target in (target_a, target_b):
            workload = load(target)
            out.append((target, workload, record_settings()))
            apply_settings(baseline)
    finally:
        apply_settings(baseline)
    return out


def load_diff_target(target: str) -> Workload:
    """A target as the diff runs it; a TrainStep becomes its eager step, whose outputs are the loss and gradients."""
    from magneton.workload import TrainStep, load_any_target

    loaded = load_any_target(target)
    if not isinstance(loaded, TrainStep):
        return loaded
    from magneton.capture.training import prepare

    run = prepare(target, loaded)
    # A bound method of the TrainingRun: capture finds the run through it (_capture_side).
    return Workload(run.eager_step, tuple(run.flat_inputs), {})


def _inputs_to_compare(workload: Workload) -> Any:
    """What two targets must share: a training step's model and batch (its optimizer and scaler state may differ)."""
    from magneton.capture.training import TrainingRun

    run = getattr(workload.fn, "__self__", None)
    if isinstance(run, TrainingRun):
        return (run.model_and_batch(), {})
    return (workload.args, dict(workload.kwargs))


def _capture_side(workload: Workload, observer: Any) -> Any:
    from magneton.capture import capture
    from magneton.capture.training import TrainingRun, capture_training

    run = getattr(workload.fn, "__self__", None)
    if isinstance(run, TrainingRun):
        return capture_training(run, observer)
    return capture(workload, observer=observer)


def _run(workload: Workload, settings: Settings) -> Any:
    import torch

    from magneton.capture.training import TrainingRun

    run = getattr(workload.fn, "__self__", None)
    with torch.no_grad(), applied(settings):
        outputs = workload.fn(*workload.args, **workload.kwargs)
    if isinstance(run, TrainingRun):
        outputs = tuple(t.detach().clone() for t in outputs)  # loss and gradients, before the state is restored
        run.restore()
    return outputs


def _node_energy(
    graph: Any, workload: Workload, settings: Settings, backend: Any, trials: int, allocator: Allocator
) -> tuple[dict, float]:
    from magneton.measure.energy_pass import PassOptions, run_energy_pass

    with applied(settings):
        result = run_energy_pass(graph, workload, backend, PassOptions(trials=trials, allocator=allocator))
    return {node_id: result.node_energy_j(node_id) for node_id in result.nodes}, result.forward_energy_j.median


def diff_workloads(
    loaded: list[Any],
    options: DiffOptions,
    progress: Callable[[str], None] | None = None,
    backend_choice: Any = None,
) -> DiffResult:
    """Diff two built workloads: [(target, workload, settings), (target, workload, settings)].

    ``backend_choice`` (a BackendChoice) overrides ``options.backend``; it is closed at the end.
    """
    from magneton.capture import workload_device
    from magneton.diff.fingerprint import FingerprintRecorder
    from magneton.measure.backends import BackendOptions, create_backend
    from magneton.workload import move_workload

    say = progress or (lambda _message: None)
    (target_a, workload_a, settings_a), (target_b, workload_b, settings_b) = loaded
    if options.device is not None:
        workload_a, workload_b = (
            move_workload(workload_a, options.device, target_a),
            move_workload(workload_b, options.device, target_b),
        )
    check_same_inputs(_inputs_to_compare(workload_a), _inputs_to_compare(workload_b), target_a, target_b)
    say("running both programs to compare their outputs")
    outputs_a, outputs_b = _run(workload_a, settings_a), _run(workload_b, settings_b)
    notes: list[str] = []
    if options.allow_different_outputs:
        output_difference, _ = largest_difference(outputs_a, outputs_b)
        if output_difference is not None and output_difference.relative > 0:
            notes.append(
                f"outputs differ (largest relative difference {output_difference.relative:.3g} in "
                f"{output_difference.where}); compared anyway (--allow-different-outputs)"
            )
    else:
        output_difference = check_same_outputs(outputs_a, outputs_b, target_a, target_b)
    del outputs_a, outputs_b
    choice = backend_choice or create_backend(
        options.backend,
        BackendOptions(
            device=workload_device(workload_a),
            watts_per_core=options.watts_per_core,
            trace_path=options.trace_path,
        ),
    )
    backend = choice.backend
    try:
        sides = []
        for label, target, workload, settings in (
            ("A", target_a, workload_a, settings_a),
            ("B", target_b, workload_b, settings_b),
        ):
            say(f"capturing side {label} ({target}) with value fingerprints")
            recorder = FingerprintRecorder()
            with applied(settings):
                graph = _capture_side(workload, recorder)
            sides.append(Side(label, target, workload, graph, build_flow(graph, recorder.fingerprints), settings))
        side_a, side_b = sides
        start = time.perf_counter()
        match = match_flows(side_a.flow, side_b.flow, pair_values(side_a.flow, side_b.flow))
        matching_time_s = time.perf_counter() - start
        say(f"matched {len(match.regions)} regions in {matching_time_s:.3f} s")
        side_results = []
        for side in sides:
            energies: dict[str, float] = {}
            total: float | None = None
            if options.op_split:
                say(f"energy pass of side {side.label} (per-operator split)")
                energies, total = _node_energy(
                    side.graph, side.workload, side.settings, backend, options.trials, options.allocator
                )
            side_results.append(SideResult(side, energies, total))
        say("replaying regions of both sides, interleaved")
        replay_options = ReplayOptions(
            trials=options.replay_trials or options.trials,
            min_window_s=options.min_window_s,
            allocator=options.allocator,
        )
        programs = {
            "A": build_programs(side_a, [r.a_ops for r in match.regions]),
            "B": build_programs(side_b, [r.b_ops for r in match.regions]),
        }
        replay = replay_regions((side_a, side_b), programs, backend, replay_options)
        regions = _judge_regions(match, replay, options.threshold)
        if options.knobs:
            calibrator = Calibrator(backend, replay_options.min_window_s or backend.info().min_window_s)
            for result in regions:
                if (
                    result.verdict is None
                    or result.verdict.verdict != "waste"
                    or not _same_ops(result.region, side_a, side_b)
                ):
                    continue
                costly = result.verdict.costly if result.verdict else None
                say(f"trying configuration knobs on region {result.index}")
                a_prog, b_prog = programs["A"][result.index], programs["B"][result.index]
                costly_prog, cheap_prog = (a_prog, b_prog) if costly == "A" else (b_prog, a_prog)
                result.knob = diagnose(
                    costly_prog, cheap_prog, calibrator, replay_options, options.threshold, side_a.graph.device
                )
        info = backend.info()
        findings = build_findings(regions, (side_results[0], side_results[1]), replay, info)
    finally:
        backend.close()
    return DiffResult(
        targets=(target_a, target_b),
        sides=(side_results[0], side_results[1]),
        match=match,
        matching_time_s=matching_time_s,
        replay=replay,
        regions=regions,
        findings=findings,
        setting_differences=differences(settings_a, settings_b),
        output_difference=output_difference,
        backend_info=info,
        backend_reason=choice.reason,
        backend_warnings=choice.warnings,
        threshold=options.threshold,
        notes=notes + replay.notes,
    )


def diff_targets(
    target_a: str, target_b: str, options: DiffOptions | None = None, progress: Callable[[str], None] | None = None
) -> DiffResult:
    return diff_workloads(load_sides(target_a, target_b), options or DiffOptions(), progress)


def _same_ops(region: Region, a: Side, b: Side) -> bool:
    def costing(flow: Any, ops: tuple[int, ...]) -> Counter[str]:
        return Counter(flow.nodes[i].op for i in ops if not flow.nodes[i].zero_cost)

    ops_a = costing(a.flow, region.a_ops)
    return bool(ops_a) and ops_a == costing(b.flow, region.b_ops)


def _judge_regions(match: Match, replay: ReplayResult, threshold: float) -> list[RegionResult]:
    results = []
    for k, region in enumerate(match.regions):
        a, b = replay.regions[("A", k)], replay.regions[("B", k)]
        verdict = (
            judge(
                a.energy_j if a else None,
                b.energy_j if b else None,
                a.time_s if a else 0.0,
                b.time_s if b else 0.0,
                threshold,
            )
            if region.matched
            else None
        )
        results.append(
            RegionResult(
                k,
                region,
                a.energy_j.median if a else 0.0,
                b.energy_j.median if b else 0.0,
                a.time_s.median if a else 0.0,
                b.time_s.median if b else 0.0,
                (a.energy_j.low, a.energy_j.high) if a else (0.0, 0.0),
                (b.energy_j.low, b.energy_j.high) if b else (0.0, 0.0),
                verdict,
            )
        )
    return results


# ---------------------------------------------------------------------------------------- findings


def _finding_source(location: SourceLocation | None) -> FindingSource | None:
    if location is None:
        return None
    return FindingSource(file=location.file, line=location.line, code=location.code, function=location.function)


def call_site(side: Side, node: OpNode) -> SourceLocation | None:
    """The innermost frame in the user's own files above a library frame (None when the op is in user code)."""
    from magneton.diagnosis import call_site as graph_call_site

    return graph_call_site(side.graph, node)


def _costing(side_result: SideResult, ops: tuple[int, ...]) -> list[tuple[OpNode, float]]:
    flow = side_result.side.flow
    return [
        (flow.nodes[i], side_result.node_energy_j.get(flow.nodes[i].id, 0.0))
        for i in ops
        if not flow.nodes[i].zero_cost
    ]


def short_op(op: str) -> str:
    name = op.removeprefix("aten.")
    for suffix in (".default", ".Tensor", ".Scalar", ".int", ".dtype", ".dtype_layout", ".Tensor_Scalar"):
        name = name.removesuffix(suffix)
    return name


def _lines(nodes: list[OpNode]) -> str:
    from magneton.report.terminal import short_path as _short_path

    by_file: dict[str, list[int]] = {}
    for node in nodes:
        if node.source is not None:
            by_file.setdefault(node.source.file, []).append(node.source.line)
    if not by_file:
        return "an unknown line"
    parts = []
    for file, lines in by_file.items():
        lo, hi = min(lines), max(lines)
        parts.append(f"{_short_path(file)}:{lo}" + (f"-{hi}" if hi != lo else ""))
    return ", ".join(parts)


def _ops_phrase(nodes: list[OpNode]) -> str:
    names = [short_op(n.op) for n in nodes]
    if len(names) == 1:
        return f"one {names[0]}"
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    return f"{len(names)} ops ({shown})"


def describe(region: RegionResult, costly: SideResult, cheap: SideResult) -> tuple[str, str]:
    """(category, explanation): which operators replace which, or the knob that closes the gap."""
    side_c, side_p = costly.side.label, cheap.side.label
    ops_c = [n for n, _ in _costing(costly, _side_ops(region.region, side_c))]
    ops_p = [n for n, _ in _costing(cheap, _side_ops(region.region, side_p))]
    count_c, count_p = Counter(n.op for n in ops_c), Counter(n.op for n in ops_p)
    if region.knob is not None:
        return "Misconfiguration", (
            f"both sides run the same operators ({_ops_phrase(ops_c)}) at different cost; " + region.knob.summary()
        )
    if not ops_p:
        return "Redundant computation", (
            f"side {side_c} runs {_ops_phrase(ops_c)} at {_lines(ops_c)}; side {side_p} computes the same "
            "values with no costing operator (views or nothing)"
        )
    if count_c == count_p:
        return "Misconfiguration", (
            f"both sides run the same operators ({_ops_phrase(ops_c)}) at different cost; "
            "no knob diagnosis was run (--no-knobs)"
        )
    category = "Redundant computation" if not (count_p - count_c) else "API misuse"
    return category, (
        f"side {side_c} runs {_ops_phrase(ops_c)} at {_lines(ops_c)}; "
        f"side {side_p} runs {_ops_phrase(ops_p)} at {_lines(ops_p)}"
    )


def _side_ops(region: Region, label: str) -> tuple[int, ...]:
    return region.a_ops if label == "A" else region.b_ops


def _carrier(costly: SideResult, cheap: SideResult, region: Region) -> OpNode | None:
    """The op on the costly side holding the excess: one with no counterpart first, then the most costly."""
    ops = _costing(costly, _side_ops(region, costly.side.label))
    peer = Counter(n.op for n, _ in _costing(cheap, _side_ops(region, cheap.side.label)))
    unmatched = []
    for node, energy in ops:
        if peer[node.op] > 0:
            peer[node.op] -= 1
        else:
            unmatched.append((node, energy))
    for group in (unmatched, ops):
        with_source = [(n, e) for n, e in group if n.source is not None]
        if with_source:
            return max(with_source, key=lambda item: item[1])[0]
    return None


def build_findings(
    regions: list[RegionResult], sides: tuple[SideResult, SideResult], replay: ReplayResult, backend_info: Any
) -> list[Finding]:
    from magneton.provenance import provenance_of_backend

    provenance = provenance_of_backend(backend_info.to_json())
    findings = []
    by_label = {s.side.label: s for s in sides}
    for region in regions:
        verdict = region.verdict
        if verdict is None or verdict.verdict != "waste" or verdict.costly is None:
            continue
        costly = by_label[verdict.costly]
        cheap = by_label["B" if verdict.costly == "A" else "A"]
        carrier = _carrier(costly, cheap, region.region)
        peer_ops = _costing(cheap, _side_ops(region.region, cheap.side.label))
        peer = max(peer_ops, key=lambda item: item[1])[0] if peer_ops else None
        category, explanation = describe(region, costly, cheap)
        energy_j = region.a_energy_j if verdict.costly == "A" else region.b_energy_j
        total_j = replay.forward[verdict.costly].energy_j.median
        split = {
            s.side.label: [
                {"id": n.id, "op": n.op, "energy_j": e} for n, e in _costing(s, _side_ops(region.region, s.side.label))
            ]
            for s in sides
        }
        findings.append(
            Finding(
                kind="diff",
                rule=None,
                category=category,  # type: ignore[arg-type]
                title=_title(region.index, verdict.costly, energy_j, verdict.excess_energy_j),
                energy_j=energy_j,
                excess_energy_j=verdict.excess_energy_j,
                share=verdict.excess_energy_j / total_j if total_j > 0 else 0.0,
                source=_finding_source(carrier.source if carrier else None),
                nodes=tuple(costly.side.flow.nodes[i].id for i in _side_ops(region.region, costly.side.label)),
                suggestion=_suggestion(region, category, cheap.side),
                explanation=explanation,
                energy_provenance=provenance.kind,
                excess_provenance=provenance.kind,
                provenance=provenance,
                peer_source=_finding_source(peer.source if peer else None),
                call_site=_finding_source(call_site(costly.side, carrier) if carrier else None),
                details={
                    "region": region.index,
                    "side": verdict.costly,
                    "target": costly.side.target,
                    "peer_target": cheap.side.target,
                    "peer_nodes": [cheap.side.flow.nodes[i].id for i in _side_ops(region.region, cheap.side.label)],
                    "ratio_a_over_b": verdict.ratio if verdict.ratio != float("inf") else None,
                    "reason": verdict.reason,
                    "operator_split": split,
                    "operator_split_provenance": "per-operator energy pass"
                    if any(s.node_energy_j for s in sides)
                    else None,
                    "knobs": region.knob.to_json() if region.knob else None,
                },
            )
        )
    return sort_findings(findings)


def _title(index: int, side: str, energy_j: float, excess_j: float) -> str:
    cheap_j = energy_j - excess_j
    if cheap_j <= 0:
        return f"region {index}: side {side} spends energy its peer does not"
    return f"region {index}: side {side} spends {excess_j / cheap_j:.0%} more energy than its peer"


def _suggestion(region: RegionResult, category: str, cheap: Side) -> str:
    if region.knob is not None and region.knob.closing is not None:
        best = region.knob.closing
        return f"set {best.knob} to {best.value} for this code on side {region.knob.costly_side} (measured above)"
    if category == "Redundant computation":
        return f"drop the extra computation; {cheap.target} gets the same values without it"
    return f"use what {cheap.target} uses for this region"


__all__ = ["DiffOptions", "DiffResult", "RegionResult", "SideResult", "diff_targets", "diff_workloads", "load_sides"]
