"""The analysis pipeline, for one target or a batch: it orchestrates, each step's logic lives in its own module.

run once (:func:`run_once`) -> capture (magneton.capture) -> energy pass (magneton.measure.energy_pass) and
overhead per module (magneton.measure.overhead) -> report (magneton.report.build) -> detectors: expected
energy (magneton.expected.pipeline), rules (magneton.rules.analysis), overhead and allocator
(magneton.pass_findings) -> diagnosis (magneton.diagnosis).

(The public entry point is :func:`magneton.analyze`; this module is what it and the CLI run.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magneton.errors import InternalError, MagnetonError, WorkloadError
from magneton.measure.backends import BackendOptions
from magneton.measure.options import PassOptions, replay_pass_options
from magneton.progress import ProgressEvent, ProgressObserver
from magneton.workload import TrainStep, Workload, load_any_target, move_workload, train_step_of

if TYPE_CHECKING:
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
    # Profile a training step: a (model, args) target is trained on the sum of its float outputs (a TrainStep
    # target is always a training step).
    train: bool = False
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


# What a training step's analysis does not do yet, said in its report.
TRAINING_SKIPS = (
    "training step: expected energy, module overhead and the allocator check are not run on training steps yet"
)


def analyze_workload(
    workload: Workload | TrainStep,
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
    workload: Workload | TrainStep,
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
    from magneton.measure.overhead import measure_overhead
    from magneton.pass_findings import add_allocator_check, add_module_overhead
    from magneton.report.build import build_report

    options = options or AnalyzeOptions()
    if options.device is not None:
        if isinstance(workload, TrainStep):
            raise WorkloadError(
                target_label,
                f"--device {options.device} cannot move a TrainStep: its optimizer holds the parameters where they "
                "are; move the model first, then build the optimizer, in the target",
            )
        workload = move_workload(workload, options.device, target_label)
    if options.train and isinstance(workload, Workload):
        workload = train_step_of(target_label, workload)
    step = workload if isinstance(workload, TrainStep) else None
    device = workload_device(
        Workload(step.model, step.args, step.kwargs) if step is not None else workload  # type: ignore[arg-type]
    )
    # The backend first: a sensor that cannot be read should fail before a long capture.
    choice = create_backend(options.backend, replace(options.backend_options, device=device))
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
        value_warnings: list[str] = []
        if step is None:
            assert isinstance(workload, Workload)
            value_warnings = run_once(workload, target_label)
        try:
            if observer is not None:
                observer(ProgressEvent("capture"))
            if step is not None:
                from magneton.capture.training import training_workload

                # Runs the step once eagerly first (the user's errors and a non-scalar loss surface there).
                graph, measured, _ = training_workload(target_label, step)
            else:
                assert isinstance(workload, Workload)
                graph, measured = capture(workload), workload
            result = run_energy_pass(graph, measured, backend, pass_options, progress=observer)
        except MagnetonError as err:
            raise classify(target_label, err, "measuring the workload") from err
        # Module overhead replays each module's inference forward: not a training step's cost (not done yet).
        overhead_rows, overhead_note = (
            measure_overhead(graph, workload, backend, pass_options, result)
            if options.overhead and isinstance(workload, Workload)
            else (None, None)
        )
        if recorder is not None and options.record_trace is not None:
            recorder.write(options.record_trace)
        report = build_report(target_label, graph, result, choice, pass_options, extra_notes=notes)
        from magneton.expected.pipeline import ExpectedOptions, add_expected_energy

        expected = ExpectedOptions(enabled=options.expected, learn=options.learn)
        if step is not None:
            notes_now = [*report.measurement_notes, TRAINING_SKIPS]
            report = msgspec.structs.replace(report, measurement_notes=notes_now)
        elif expected.is_enabled() and isinstance(workload, Workload):
            report = add_expected_energy(report, graph, workload, result, backend, pass_options, expected)
        if options.rules:
            from magneton.rules.analysis import add_rule_findings

            report = add_rule_findings(report, graph, target_label, options.rule_dirs)
        if overhead_rows is not None:
            report = add_module_overhead(report, overhead_rows)
        if overhead_note is not None:
            report = msgspec.structs.replace(report, measurement_notes=[*report.measurement_notes, overhead_note])
        report = msgspec.structs.replace(
            report,
            energy_scope=energy_scope(workload.fn) if isinstance(workload, Workload) else report.energy_scope,
            measurement_notes=[*report.measurement_notes, *value_warnings],
        )
        if options.trace_events is not None:
            from magneton.report.trace_events import write_trace_events

            write_trace_events(options.trace_events, graph, report)
    finally:
        backend.close()
    if options.allocator_check and pass_options.allocator != "steady" and step is None:
        report = add_allocator_check(
            report,
            options.energy_pass,
            options.backend_options.watts_per_core,
            reload_target,
            result.forward_fault_time_share,
        )
    from magneton.diagnosis import attach_sources  # every finding, whichever detector: file:line + expression

    return attach_sources(report, graph)


def analyze_target(
    target: str, options: AnalyzeOptions | None = None, progress: ProgressObserver | None = None
) -> Report:
    return analyze_workload(load_any_target(target), target, options, progress, reload_target=target)


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
