"""The analysis pipeline: target -> capture -> energy pass -> report, for one target or a batch.

(The public entry point is :func:`magneton.analyze`; this module is what it and the CLI run.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magneton.errors import InternalError, MagnetonError, WorkloadError
from magneton.measure.backends import BackendOptions
from magneton.measure.backends.base import EnergyBackend
from magneton.measure.options import PassOptions
from magneton.progress import ProgressEvent, ProgressObserver
from magneton.workload import Workload, load_target

if TYPE_CHECKING:
    from magneton.findings import Finding
    from magneton.measure.allocator_knob import KnobResult
    from magneton.report.model import Report


@dataclass(frozen=True)
class AnalyzeOptions:
    """Everything one analysis can be told; each part's defaults live in that part's options."""

    backend: str = "auto"  # a name from magneton.measure.backends.BACKEND_CHOICES
    device: str | None = None  # None: where the workload already lives
    energy_pass: PassOptions = field(default_factory=PassOptions)
    # The backend's settings; its ``device`` is always the workload's, filled in when the backend is made.
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    record_trace: Path | None = None  # write what was measured, for --backend replay later
    rules: bool = True  # run the rule catalog on the graph and the user's source (magneton.rules.analysis)
    rule_dirs: tuple[str, ...] = ()  # extra rule folders (--rules DIR)
    trace_events: Path | None = None  # write a Chrome trace-event timeline of one forward pass here
    # Measure glibc malloc's thresholds as a knob in a child process (magneton.measure.allocator_knob);
    # needs a target the child can load, so analyses of in-memory workloads skip it.
    allocator_check: bool = True
    # Attribute framework overhead to modules by replaying each module's whole forward.
    overhead: bool = True
    expected: bool | None = None  # expected energy and anomalies; None: on unless $MAGNETON_EXPECTED=0
    learn: bool = False  # add the measured nodes to the expected-energy model's training data

    @classmethod
    def option_owners(cls) -> dict[str, str]:
        """Every flat option name and the part that owns it ("own", "energy_pass" or "backend_options")."""
        own = {f.name for f in fields(cls)} - {"energy_pass", "backend_options"}
        owners = {name: "own" for name in own}
        owners.update({f.name: "energy_pass" for f in fields(PassOptions)})
        # The backend's device is the workload's: users choose it with ``device``.
        owners.update({f.name: "backend_options" for f in fields(BackendOptions) if f.name != "device"})
        return owners

    @classmethod
    def from_flat(cls, **options: Any) -> AnalyzeOptions:
        """Build from flat keywords (``trials=3, watts_per_core=5.0``), each routed to the part that owns it.

        This is what the CLI and the Python API take; an unknown keyword is a MagnetonError listing the known ones.
        """
        owners = cls.option_owners()
        parts: dict[str, dict[str, Any]] = {"own": {}, "energy_pass": {}, "backend_options": {}}
        for name, value in options.items():
            if name not in owners:
                raise MagnetonError(f"unknown analysis option {name!r}; known options: {', '.join(sorted(owners))}")
            parts[owners[name]][name] = value
        return cls(
            **parts["own"],
            energy_pass=PassOptions(**parts["energy_pass"]),
            backend_options=BackendOptions(**parts["backend_options"]),
        )


def move_workload(workload: Workload, device: str, target: str = "<workload>") -> Workload:
    import torch

    from magneton.capture.torch_compat import tree_map

    if device.startswith("cuda") and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise WorkloadError(target, f"--device {device} requested, but {why}; run on the CPU (--device cpu)")

    def move(value: Any) -> Any:
        return value.to(device) if isinstance(value, torch.Tensor) else value

    fn = workload.fn.to(device) if isinstance(workload.fn, torch.nn.Module) else workload.fn
    args, kwargs = tree_map(move, (workload.args, dict(workload.kwargs)))
    return Workload(fn, tuple(args), kwargs)


def replay_pass_options(backend: EnergyBackend, options: PassOptions) -> tuple[PassOptions, list[str]]:
    """Energy-pass options a replay can honestly run with: every trace sample used at most once.

    Cycling a 3-trial trace through 7 trials would report 7 trials and a confidence interval
    built from copies of the same 3 samples. Nothing runs inside a replayed window, so a
    "contended" one is not measured again either: that would only draw the next sample.
    """
    from magneton.measure.backends.replay import ReplayBackend

    if not isinstance(backend, ReplayBackend):
        return options, []
    available = backend.trials_available
    notes = []
    if options.trials > available:
        notes.append(
            f"--trials {options.trials} lowered to {available}: trace {backend.path.name} holds {available} "
            "trial(s) per measurement, and replaying a sample twice would fake a tighter interval"
        )
    trials = min(options.trials, available)
    return replace(options, trials=trials, min_trials=min(options.min_trials, trials), remeasure_contended=False), notes


def run_once(workload: Workload, target: str) -> list[str]:
    """Run the program once, eagerly, as the user would: its own errors surface here, blamed on its code.

    Tracers swallow exceptions and fall back, so a ``forward`` that raises would otherwise end as a
    vague capture failure. Inputs the program writes into are restored afterwards. Returns warnings
    about the values it saw (NaN or Inf: arithmetic on them can run at a different speed).
    """
    import torch

    from magneton.blame import classify
    from magneton.capture import InputSnapshot
    from magneton.capture.values import tensor_leaves

    inputs = InputSnapshot((workload.args, dict(workload.kwargs)))
    warnings = _non_finite("inputs", tensor_leaves((list(workload.args), dict(workload.kwargs))))
    try:
        with torch.no_grad():
            outputs = workload.fn(*workload.args, **workload.kwargs)
        warnings += _non_finite("outputs", tensor_leaves(outputs))
        return warnings
    except (Exception, SystemExit) as err:
        if isinstance(err, SystemExit):
            raise WorkloadError(target, f"the workload called sys.exit({err.code!r}) while running") from err
        raise classify(target, err, "running the workload") from err
    finally:
        inputs.restore()


def _non_finite(what: str, tensors: list[Any]) -> list[str]:
    floating = [t for t in tensors if (t.is_floating_point() or t.is_complex()) and t.numel() > 0]
    bad = sum(1 for t in floating if not bool(t.isfinite().all()))
    if not bad:
        return []
    return [
        f"{bad} of the workload's {what} hold NaN or Inf: timings of arithmetic on non-finite values can differ "
        "from those on real data"
    ]


def energy_scope(fn: Any) -> str:
    """What one measured call is: a module's forward pass, or a call of some other callable (generate, ...)."""
    import torch

    if isinstance(fn, torch.nn.Module):
        return "one forward pass of the workload"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return f"one call of the workload ({name})"


def analyze_workload(
    workload: Workload,
    target_label: str,
    options: AnalyzeOptions | None = None,
    progress: ProgressObserver | None = None,
    reload_target: str | None = None,
) -> Report:
    """Profile one workload and return its ``magneton.report/1`` report; ``progress`` hears how far it got.

    Every error names ``target_label``: the user's own errors as WorkloadError with their file:line,
    Magneton's bugs as InternalError.
    """
    from magneton.blame import classify

    try:
        return _analyze_workload(workload, target_label, options, progress, reload_target)
    except (MagnetonError, KeyboardInterrupt):
        raise
    except Exception as err:
        raise classify(target_label, err, "analysing the workload") from err


def _analyze_workload(
    workload: Workload,
    target_label: str,
    options: AnalyzeOptions | None = None,
    progress: ProgressObserver | None = None,
    reload_target: str | None = None,
) -> Report:
    import msgspec

    from magneton.blame import classify
    from magneton.capture import capture, workload_device
    from magneton.measure.backends import create_backend
    from magneton.measure.energy_pass import run_energy_pass
    from magneton.report.build import build_report

    options = options or AnalyzeOptions()
    if options.device is not None:
        workload = move_workload(workload, options.device, target_label)
    # The backend first: a sensor that cannot be read should fail before a long capture.
    choice = create_backend(options.backend, replace(options.backend_options, device=workload_device(workload)))
    backend = choice.backend
    recorder = None
    if options.record_trace is not None:
        from magneton.measure.backends.replay import TraceRecorder

        backend = recorder = TraceRecorder(choice.backend)
    pass_options, notes = replay_pass_options(choice.backend, options.energy_pass)
    observer = None
    if progress is not None:
        report_to = progress

        def observer(event: ProgressEvent) -> None:
            report_to(replace(event, target=target_label))

    try:
        value_warnings = run_once(workload, target_label)
        try:
            if observer is not None:
                observer(ProgressEvent("capture"))
            graph = capture(workload)
            result = run_energy_pass(graph, workload, backend, pass_options, progress=observer)
        except MagnetonError as err:
            raise classify(target_label, err, "measuring the workload") from err
        overhead_rows, overhead_note = (
            _module_overhead(graph, workload, backend, pass_options, result) if options.overhead else (None, None)
        )
        if recorder is not None and options.record_trace is not None:
            recorder.write(options.record_trace)
        report = build_report(target_label, graph, result, choice, pass_options, extra_notes=notes)
        from magneton.expected.pipeline import ExpectedOptions, add_expected_energy

        expected = ExpectedOptions(enabled=options.expected, learn=options.learn)
        if expected.is_enabled():
            report = add_expected_energy(report, graph, workload, result, backend, pass_options, expected)
        if options.rules:
            from magneton.rules.analysis import add_rule_findings

            report = add_rule_findings(report, graph, target_label, options.rule_dirs)
        if overhead_rows is not None:
            report = _with_overhead(report, overhead_rows)
        if overhead_note is not None:
            report = msgspec.structs.replace(report, measurement_notes=[*report.measurement_notes, overhead_note])
        report = msgspec.structs.replace(
            report,
            energy_scope=energy_scope(workload.fn),
            measurement_notes=[*report.measurement_notes, *value_warnings],
        )
        if options.trace_events is not None:
            from magneton.report.trace_events import write_trace_events

            write_trace_events(options.trace_events, graph, report)
    finally:
        backend.close()
    if options.allocator_check and pass_options.allocator == "process":
        report = _check_allocator(report, options, reload_target, result.forward_fault_time_share)
    from magneton.diagnosis import attach_sources  # every finding, whichever detector: file:line + expression

    return attach_sources(report, graph)


OVERHEAD_FINDING_SHARE = 0.5  # framework overhead above this share of the whole pass makes a finding


def _module_overhead(graph: Any, workload: Workload, backend: Any, pass_options: PassOptions, result: Any) -> Any:
    """Per-module overhead rows (magneton.measure.overhead), or None and a note saying why not."""
    import torch

    from magneton.measure.energy_pass import Timer
    from magneton.measure.overhead import attribute_overhead, measure_module_calls, record_module_calls

    if backend.name == "replay":
        return None, "overhead per module not attributed: a replayed trace holds operator windows only"
    if graph.mutates_inputs:
        return None, "overhead per module not attributed: the program writes into its inputs"
    calls = record_module_calls(workload)
    if calls is None:
        return None, "overhead per module not attributed: the workload is not an nn.Module (or its method)"
    timer = Timer(backend, pass_options, result.min_window_s)
    with torch.no_grad():
        measured = measure_module_calls(calls, timer, max(1, result.min_trials))
    rows = attribute_overhead(graph, calls, measured, result.node_energy_j, result.forward_energy_j.median)
    return rows, None


def _with_overhead(report: Report, rows: list[Any]) -> Report:
    import msgspec

    from magneton.findings import Finding, FindingSource, sort_findings
    from magneton.report.model import ModuleOverheadRow, NodeSource

    total = report.total_energy_j
    model_rows = [
        ModuleOverheadRow(
            module_path=row.path,
            module_type=row.module_type,
            calls=row.calls,
            whole_energy_j=row.whole_energy_j,
            children_energy_j=row.children_energy_j,
            operators_energy_j=row.operators_energy_j,
            overhead_energy_j=row.overhead_energy_j,
            share=row.overhead_energy_j / total if total > 0 else 0.0,
            source=NodeSource(file=row.source.file, line=row.source.line, function=row.source.function, code="")
            if row.source
            else None,
            provenance=report.energy_provenance,
        )
        for row in rows
    ]
    # Net overhead: a module whose parts cost more replayed alone than in place has negative overhead,
    # and explained coverage then stays honest instead of counting only the positive side.
    overhead_j = sum(row.overhead_energy_j for row in rows)
    explained = (report.node_energy_sum_j + overhead_j) / total if total > 0 else None
    findings = list(report.findings)
    if total > 0 and overhead_j / total >= OVERHEAD_FINDING_SHARE:
        top = model_rows[0]
        remedies = "a larger batch (the overhead is paid per call, not per sample), torch.compile"
        if report.device.startswith("cuda"):
            remedies += ", CUDA graphs"
        findings.append(
            Finding(
                kind="anomaly",
                rule=None,
                category="Misconfiguration",
                title="framework overhead dominates: most energy is spent between operators",
                energy_j=total,
                excess_energy_j=overhead_j,
                share=overhead_j / total,
                source=FindingSource(file=top.source.file, line=top.source.line, function=top.source.function)
                if top.source
                else None,
                suggestion=f"amortise or remove the per-call overhead: {remedies}",
                explanation=(
                    f"{overhead_j / total:.0%} of the whole pass is Python and framework overhead outside the "
                    f"operators, most in {top.module_path or '(root)'} [{top.module_type}] "
                    f"({top.share:.0%}); the remedies' savings were not measured"
                ),
                energy_provenance=report.energy_provenance.kind,
                excess_provenance=report.energy_provenance.kind,
                details={"overhead_energy_j": overhead_j, "explained_coverage": explained},
            )
        )
    return msgspec.structs.replace(
        report,
        overhead=model_rows,
        overhead_energy_j=overhead_j,
        explained_coverage=explained,
        findings=sort_findings(findings),
    )


def _check_allocator(report: Report, options: AnalyzeOptions, target: str | None, fault_share: float) -> Report:
    """Measure the allocator knob in a child when it can matter; add the finding or say why not."""
    import msgspec

    from magneton.measure.allocator_knob import measure_in_child, should_check

    if target is None:
        skipped: str | None = "allocator check skipped: an in-memory workload cannot be reloaded in a child process"
    else:
        skipped = should_check(report.device, report.allocator, fault_share, report.backend.name)
    if skipped is not None:
        return msgspec.structs.replace(report, measurement_notes=[*report.measurement_notes, skipped])
    assert target is not None
    pass_options = options.energy_pass
    try:
        knob = measure_in_child(
            target,
            report.backend.name,
            report.device,
            pass_options.forward_window_s,
            max(3, pass_options.min_trials),
            max(3, pass_options.forward_warmup_calls),
            options.backend_options.watts_per_core,
        )
    except (OSError, RuntimeError, ValueError, TypeError, subprocess.TimeoutExpired) as err:
        note = f"allocator check failed: {err}"
        return msgspec.structs.replace(report, measurement_notes=[*report.measurement_notes, note])
    note = (
        f"allocator check (child process): fixing glibc malloc's thresholds changes the whole pass by "
        f"{-knob.relative_change:+.0%} ({knob.default_faults_per_call:,.0f} -> {knob.steady_faults_per_call:,.0f} "
        "page faults per call)"
    )
    finding = allocator_finding(knob, report.total_energy_j, report.energy_provenance.kind)
    findings = [*report.findings, finding] if finding is not None else report.findings
    from magneton.findings import sort_findings

    return msgspec.structs.replace(
        report, measurement_notes=[*report.measurement_notes, note], findings=sort_findings(findings)
    )


def allocator_finding(result: KnobResult, total_energy_j: float, provenance: str) -> Finding | None:
    """A Misconfiguration finding when fixing malloc's thresholds saves FINDING_THRESHOLD or more."""
    from magneton.findings import Finding
    from magneton.measure.allocator_knob import FINDING_THRESHOLD, REMEDY

    change = result.relative_change
    if change < FINDING_THRESHOLD:
        return None
    excess_j = change * total_energy_j  # the same relative saving, on this analysis' whole pass
    return Finding(
        kind="anomaly",
        rule=None,
        category="Misconfiguration",
        title="glibc malloc returns and re-faults large temporaries on every call",
        energy_j=total_energy_j,
        excess_energy_j=excess_j,
        share=change,
        source=None,
        suggestion=REMEDY,
        explanation=(
            f"measured in a fresh child process: the whole pass took {result.default_median_j:.3g} J per call "
            f"under glibc's default thresholds ({result.default_faults_per_call:,.0f} page faults per call) and "
            f"{result.steady_median_j:.3g} J with the thresholds fixed ({result.steady_faults_per_call:,.0f} "
            f"faults per call): {change:.0%} less"
        ),
        energy_provenance=provenance,
        excess_provenance=provenance,
        details={
            "default_energy_j": result.default_energy_j,
            "steady_energy_j": result.steady_energy_j,
            "default_faults_per_call": result.default_faults_per_call,
            "steady_faults_per_call": result.steady_faults_per_call,
            "method": "child process: default windows, then mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD), then "
            "steady windows; medians compared",
        },
    )


def analyze_target(
    target: str, options: AnalyzeOptions | None = None, progress: ProgressObserver | None = None
) -> Report:
    return analyze_workload(load_target(target), target, options, progress, reload_target=target)


@dataclass(frozen=True)
class BatchItem:
    target: str
    report: Report | None
    error: str | None
    traceback: str | None = None  # an internal error's full traceback, shown with --debug


def analyze_batch(
    targets: Sequence[str],
    options: AnalyzeOptions,
    on_item: Callable[[BatchItem], None] | None = None,
    progress: ProgressObserver | None = None,
) -> list[BatchItem]:
    """Analyze each target; one that fails yields an error item and the batch goes on."""
    items = []
    for target in targets:
        try:
            item = BatchItem(target, analyze_target(target, options, progress), None)
        except InternalError as err:
            item = BatchItem(target, None, str(err), err.traceback_text)
        except MagnetonError as err:
            item = BatchItem(target, None, str(err) if str(err).startswith("target ") else f"target {target!r}: {err}")
        except Exception as err:  # an unexpected failure in one target must not lose the others
            from magneton.blame import classify

            classified = classify(target, err, "analysing the workload")
            item = BatchItem(target, None, str(classified), getattr(classified, "traceback_text", None))
        items.append(item)
        if on_item is not None:
            on_item(item)
    return items
