"""The analysis pipeline: target -> capture -> energy pass -> report, for one target or a batch.

(The public entry point is :func:`magneton.analyze`; this module is what it and the CLI run.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magneton.errors import MagnetonError
from magneton.measure.backends.base import EnergyBackend
from magneton.workload import Workload, load_target

if TYPE_CHECKING:
    from magneton.report.model import Report


@dataclass(frozen=True)
class AnalyzeOptions:
    backend: str = "auto"
    device: str | None = None  # None: where the workload already lives
    trials: int = 5
    warmup_calls: int = 3
    min_window_s: float | None = None
    idle_s: float | None = None  # None: the energy pass' default
    watts_per_core: float | None = None
    trace_path: Path | None = None  # replay input
    record_trace: Path | None = None  # write what was measured, for --backend replay later
    powercap_root: Path | None = None


def move_workload(workload: Workload, device: str) -> Workload:
    import torch
    from torch.utils._pytree import tree_map

    def move(value: Any) -> Any:
        return value.to(device) if isinstance(value, torch.Tensor) else value

    fn = workload.fn.to(device) if isinstance(workload.fn, torch.nn.Module) else workload.fn
    args, kwargs = tree_map(move, (workload.args, dict(workload.kwargs)))
    return Workload(fn, tuple(args), kwargs)


def replay_trials(backend: EnergyBackend, requested: int) -> tuple[int, list[str]]:
    """Trials a replay can honestly give: no more than the trace holds, or samples would repeat.

    Cycling a 3-trial trace through 7 trials would report 7 trials and a confidence
    interval built from copies of the same 3 samples.
    """
    from magneton.measure.backends.replay import ReplayBackend

    if not isinstance(backend, ReplayBackend):
        return requested, []
    available = backend.trials_available
    if requested <= available:
        return requested, []
    return available, [
        f"--trials {requested} lowered to {available}: trace {backend.path.name} holds {available} trial(s) "
        "per measurement, and replaying a sample twice would fake a tighter interval"
    ]


def analyze_workload(workload: Workload, target_label: str, options: AnalyzeOptions | None = None) -> Report:
    """Profile one workload and return its ``magneton.report/1`` report."""
    from magneton.capture import capture, workload_device
    from magneton.measure.backends import BackendOptions, create_backend
    from magneton.measure.energy_pass import PassOptions, run_energy_pass
    from magneton.report.build import build_report

    options = options or AnalyzeOptions()
    if options.device is not None:
        workload = move_workload(workload, options.device)
    # The backend first: a sensor that cannot be read should fail before a long capture.
    choice = create_backend(
        options.backend,
        BackendOptions(
            device=workload_device(workload),
            watts_per_core=options.watts_per_core,
            trace_path=options.trace_path,
            powercap_root=options.powercap_root,
        ),
    )
    backend = choice.backend
    recorder = None
    if options.record_trace is not None:
        from magneton.measure.backends.replay import TraceRecorder

        backend = recorder = TraceRecorder(choice.backend)
    trials, notes = replay_trials(choice.backend, options.trials)
    pass_options = PassOptions(
        trials=trials,
        warmup_calls=options.warmup_calls,
        min_window_s=options.min_window_s,
        idle_s=options.idle_s,
    )
    try:
        graph = capture(workload)
        result = run_energy_pass(graph, workload, backend, pass_options)
        if recorder is not None and options.record_trace is not None:
            recorder.write(options.record_trace)
        return build_report(target_label, graph, result, choice, pass_options, extra_notes=notes)
    finally:
        backend.close()


def analyze_target(target: str, options: AnalyzeOptions | None = None) -> Report:
    return analyze_workload(load_target(target), target, options)


@dataclass(frozen=True)
class BatchItem:
    target: str
    report: Report | None
    error: str | None


def analyze_batch(
    targets: Sequence[str], options: AnalyzeOptions, on_item: Callable[[BatchItem], None] | None = None
) -> list[BatchItem]:
    """Analyze each target; one that fails yields an error item and the batch goes on."""
    items = []
    for target in targets:
        try:
            item = BatchItem(target, analyze_target(target, options), None)
        except MagnetonError as err:
            item = BatchItem(target, None, str(err))
        except Exception as err:  # an unexpected failure in one target must not lose the others
            item = BatchItem(target, None, f"target {target!r}: internal error {type(err).__name__}: {err}")
        items.append(item)
        if on_item is not None:
            on_item(item)
    return items
