"""``magneton analyze``: target -> capture -> energy pass -> report, for one target or a batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magneton.errors import MagnetonError
from magneton.workload import Workload, load_target


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
    expected: Any = None  # magneton.expected.pipeline.ExpectedOptions; None: its defaults


def move_workload(workload: Workload, device: str) -> Workload:
    import torch
    from torch.utils._pytree import tree_map

    def move(value: Any) -> Any:
        return value.to(device) if isinstance(value, torch.Tensor) else value

    fn = workload.fn.to(device) if isinstance(workload.fn, torch.nn.Module) else workload.fn
    args, kwargs = tree_map(move, (workload.args, dict(workload.kwargs)))
    return Workload(fn, tuple(args), kwargs)


def analyze_workload(workload: Workload, target_label: str, options: AnalyzeOptions | None = None) -> dict[str, Any]:
    """Profile one workload and return its ``magneton.report/1`` dict."""
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
    pass_options = PassOptions(
        trials=options.trials,
        warmup_calls=options.warmup_calls,
        min_window_s=options.min_window_s,
        idle_s=options.idle_s,
    )
    try:
        graph = capture(workload)
        result = run_energy_pass(graph, workload, backend, pass_options)
        if recorder is not None and options.record_trace is not None:
            recorder.write(options.record_trace)
        report = build_report(target_label, graph, result, choice, pass_options)
        from magneton.expected.pipeline import ExpectedOptions, add_expected_energy

        expected = options.expected if options.expected is not None else ExpectedOptions()
        if expected.is_enabled():
            add_expected_energy(report, graph, workload, result, backend, pass_options, expected)
        return report
    finally:
        backend.close()


def analyze_target(target: str, options: AnalyzeOptions | None = None) -> dict[str, Any]:
    return analyze_workload(load_target(target), target, options)


@dataclass(frozen=True)
class BatchItem:
    target: str
    report: dict[str, Any] | None
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
