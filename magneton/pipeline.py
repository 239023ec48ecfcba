"""The analysis pipeline: target -> capture -> energy pass -> report, for one target or a batch.

(The public entry point is :func:`magneton.analyze`; this module is what it and the CLI run.)
"""

from __future__ import annotations

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


def run_once(workload: Workload, target: str) -> None:
    """Run the program once, eagerly, as the user would: its own errors surface here, blamed on its code.

    Tracers swallow exceptions and fall back, so a ``forward`` that raises would otherwise end as a
    vague capture failure. Inputs the program writes into are restored afterwards.
    """
    import torch

    from magneton.blame import classify
    from magneton.capture import InputSnapshot

    inputs = InputSnapshot((workload.args, dict(workload.kwargs)))
    try:
        with torch.no_grad():
            workload.fn(*workload.args, **workload.kwargs)
    except (Exception, SystemExit) as err:
        if isinstance(err, SystemExit):
            raise WorkloadError(target, f"the workload called sys.exit({err.code!r}) while running") from err
        raise classify(target, err, "running the workload") from err
    finally:
        inputs.restore()


def analyze_workload(
    workload: Workload,
    target_label: str,
    options: AnalyzeOptions | None = None,
    progress: ProgressObserver | None = None,
) -> Report:
    """Profile one workload and return its ``magneton.report/1`` report; ``progress`` hears how far it got.

    Every error names ``target_label``: the user's own errors as WorkloadError with their file:line,
    Magneton's bugs as InternalError.
    """
    from magneton.blame import classify

    try:
        return _analyze_workload(workload, target_label, options, progress)
    except (MagnetonError, KeyboardInterrupt):
        raise
    except Exception as err:
        raise classify(target_label, err, "analysing the workload") from err


def _analyze_workload(
    workload: Workload,
    target_label: str,
    options: AnalyzeOptions | None = None,
    progress: ProgressObserver | None = None,
) -> Report:
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
        run_once(workload, target_label)
        try:
            if observer is not None:
                observer(ProgressEvent("capture"))
            graph = capture(workload)
            result = run_energy_pass(graph, workload, backend, pass_options, progress=observer)
        except MagnetonError as err:
            raise classify(target_label, err, "measuring the workload") from err
        if recorder is not None and options.record_trace is not None:
            recorder.write(options.record_trace)
        report = build_report(target_label, graph, result, choice, pass_options, extra_notes=notes)
        if options.rules:
            from magneton.rules.analysis import add_rule_findings

            report = add_rule_findings(report, graph, target_label, options.rule_dirs)
        if options.trace_events is not None:
            from magneton.report.trace_events import write_trace_events

            write_trace_events(options.trace_events, graph, report)
        from magneton.diagnosis import attach_sources  # every finding, whichever detector: file:line + expression

        return attach_sources(report, graph)
    finally:
        backend.close()


def analyze_target(
    target: str, options: AnalyzeOptions | None = None, progress: ProgressObserver | None = None
) -> Report:
    return analyze_workload(load_target(target), target, options, progress)


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
