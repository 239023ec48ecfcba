"""``magneton analyze``: profile workloads operator by operator."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from magneton.commands import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    add_allocator_argument,
    exit_code,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from magneton.pipeline import AnalyzeOptions
    from magneton.progress import ProgressEvent

NAME = "analyze"
HELP = "profile a workload operator by operator"
DESCRIPTION = (
    "Capture the workload's operator graph, measure (or estimate) every operator's energy, "
    "and report where the joules go. Exit code: 0 nothing found, 1 findings, 2 errors."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from magneton.commands import non_negative_int
    from magneton.measure.backends import BACKEND_CHOICES, BACKENDS
    from magneton.measure.options import PassOptions

    defaults = PassOptions()

    parser.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="path/to/file.py:function or package.module:function; the function takes no "
        "arguments and returns (callable, args[, kwargs]) or a magneton.Workload",
    )
    auto_order = ", else ".join(spec.name for spec in BACKENDS if spec.auto != "never")
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help=f"energy source (default: auto — the first that works of {auto_order}; "
        "`magneton env` shows which work here)",
    )
    parser.add_argument("--device", help="move the workload to this torch device first (e.g. cuda, cuda:1, cpu)")
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="write the magneton.report/1 JSON here (a folder when several targets are given); "
        "'-' writes it to stdout, and the terminal report then goes to stderr",
    )
    parser.add_argument(
        "--html",
        type=Path,
        metavar="PATH",
        help="write a self-contained HTML report here, viewable offline (a folder when several targets are given)",
    )
    parser.add_argument(
        "--trace-events",
        type=Path,
        metavar="FILE",
        help="write a Chrome trace-event timeline of one forward pass (opens in Perfetto and chrome://tracing)",
    )
    parser.add_argument(
        "--trials",
        type=positive_int,
        default=defaults.trials,
        help=f"most interleaved trials per operator; adaptive: operators whose interval is within "
        f"±{defaults.target_relative_spread:.0%}% stop earlier (default {defaults.trials})",  # %% for argparse
    )
    parser.add_argument(
        "--min-trials",
        type=positive_int,
        default=defaults.min_trials,
        metavar="N",
        help=f"fewest trials per operator (default {defaults.min_trials}; with 2 the median is only a mean)",
    )
    parser.add_argument(
        "--no-overhead",
        action="store_true",
        help="do not attribute framework overhead to modules (saves one window per distinct module per trial)",
    )
    parser.add_argument(
        "--no-allocator-check",
        action="store_true",
        help="do not measure glibc malloc's thresholds as a knob in a child process",
    )
    add_allocator_argument(parser)
    parser.add_argument(
        "--warmup-calls",
        type=non_negative_int,
        default=defaults.warmup_calls,
        metavar="N",
        help=f"untimed calls of each operator before its first window (default {defaults.warmup_calls})",
    )
    parser.add_argument(
        "--min-window-s", type=positive_float, help="shortest measurement window in seconds (default: the backend's)"
    )
    parser.add_argument(
        "--idle-s",
        type=positive_float,
        metavar="S",
        help="length of the idle-power window in seconds (default: max(0.2 s, the backend's min window))",
    )
    parser.add_argument(
        "--cpu-watts-per-core",
        type=positive_float,
        metavar="W",
        help="per-core power for the estimate backend (also MAGNETON_CPU_WATTS_PER_CORE)",
    )
    parser.add_argument("--trace", type=Path, metavar="FILE", help="recorded trace for --backend replay")
    parser.add_argument(
        "--record-trace",
        type=Path,
        metavar="FILE",
        help="record every measurement to FILE (JSON, a .json name) for --backend replay",
    )
    parser.add_argument(
        "--no-expected",
        dest="expected",
        action="store_false",
        default=None,
        help="skip expected energy and anomaly findings (no calibration, no counterfactual replays)",
    )
    parser.add_argument(
        "--expected", dest="expected", action="store_true", help="predict expected energy even when MAGNETON_EXPECTED=0"
    )
    parser.add_argument(
        "--learn", action="store_true", help="add this analysis' measured operators to the calibration's training data"
    )
    parser.add_argument("--top", type=positive_int, default=15, help="operators shown in the terminal (default 15)")
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no terminal report and no progress: one line per target (energy, backend, provenance), errors "
        "and the summary (progress is also off when stderr is not a terminal)",
    )
    parser.add_argument(
        "--rules", action="append", default=[], metavar="DIR", help="also run the rules in DIR (repeatable)"
    )
    parser.add_argument("--no-rules", action="store_true", help="do not run the rule catalog")
    parser.add_argument(
        "--train",
        action="store_true",
        help="profile a training step (forward, backward; loss = sum of the float outputs) instead of inference; "
        "a target returning a magneton.TrainStep is always a training step",
    )
    parser.add_argument(
        "--peer",
        metavar="TARGET_B",
        help="diff against this peer computing the same thing (same as `magneton diff TARGET TARGET_B`)",
    )
    from magneton.commands.diff import add_diff_options

    add_diff_options(parser)
    parser.add_argument("--debug", action="store_true", help="print the full traceback of internal errors")


def report_file_name(target: str) -> str:
    """A batch report's file name: the target with path separators and the like as ``_``, no hidden-file dot."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", target).strip("_.-")
    return f"{stem or 'target'}.json"


def _report_path(json_arg: Path, target: str, batch: bool, suffix: str = ".json") -> Path:
    return json_arg / (report_file_name(target).removesuffix(".json") + suffix) if batch else json_arg


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_json_path(path: Path, batch: bool, flag: str = "--json", example: str = "report.json") -> str | None:
    """Why ``--json PATH`` (or another output ``flag``) cannot take the report(s), or None: checked before minutes
    of analysis."""
    if batch:
        if path.exists() and not path.is_dir():
            return f"{flag} {path}: several targets write one report each into a folder, but {path} is a file"
        folder = path if path.exists() else _nearest_existing(path)
    else:
        if path.is_dir():
            return f"{flag} {path} is a folder; with one target give a file name (e.g. {path / example})"
        if path.exists() and not os.access(path, os.W_OK):
            return f"{flag} {path}: the file is not writable"
        folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        return f"{flag} {path}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{flag} {path}: cannot create files in {folder} (permission denied)"
    return None


def analyze_options(args: argparse.Namespace) -> AnalyzeOptions:
    """The command line's options as the API's: the same names, checked the same way as magneton.analyze()."""
    from magneton.api import make_options

    return make_options(
        backend=args.backend,
        device=args.device,
        trials=args.trials,
        min_trials=min(args.min_trials, args.trials),
        allocator=args.allocator,
        allocator_check=not args.no_allocator_check,
        overhead=not args.no_overhead,
        warmup_calls=args.warmup_calls,
        min_window_s=args.min_window_s,
        idle_s=args.idle_s,
        watts_per_core=args.cpu_watts_per_core,
        trace_path=args.trace,
        record_trace=args.record_trace,
        rules=not getattr(args, "no_rules", False),
        rule_dirs=tuple(str(d) for d in getattr(args, "rules", [])),
        trace_events=args.trace_events,
        train=getattr(args, "train", False),
        expected=args.expected,
        learn=args.learn,
    )


class ProgressView:
    """Draws the pipeline's progress events on a (stderr) console with rich.progress, one display per target."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, event: ProgressEvent) -> None:
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        if self.progress is None:
            # stdout is left alone: the report (or the JSON) is written there.
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("", total=None)
        assert self.task is not None
        description = f"[bold]{escape(event.target)}[/] {escape(event.describe())}"
        if event.stage == "trial" and event.total > 0:
            done = (event.trial - 1) * event.total + event.done
            self.progress.update(self.task, description=description, completed=done, total=event.trials * event.total)
        else:
            self.progress.update(self.task, description=description, total=None)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def progress_view(args: argparse.Namespace, stderr: TextIO) -> ProgressView | None:
    """Progress is drawn only for a person watching: not with --quiet, not when stderr is a file or a pipe."""
    if args.quiet or not stderr.isatty():
        return None
    from rich.console import Console

    return ProgressView(Console(file=stderr))


def run(args: argparse.Namespace) -> int:
    import contextlib
    import sys

    from rich.console import Console
    from rich.markup import escape

    from magneton.errors import MagnetonError
    from magneton.pipeline import BatchItem, analyze_batch
    from magneton.report.terminal import summary_line

    if args.peer is not None:
        from magneton.commands.diff import run_diff

        if len(args.targets) != 1:
            Console(stderr=True).print("[red]error:[/] --peer takes a single target")
            return EXIT_ERROR
        return run_diff(args, args.targets[0], args.peer)
    errors = Console(stderr=True)
    json_to_stdout = args.json is not None and str(args.json) == "-"
    # With --json -, stdout carries the JSON and nothing else: the terminal report goes to stderr.
    console = errors if json_to_stdout else Console()
    stdout = sys.stdout
    batch = len(args.targets) > 1
    problem = None
    if batch and args.record_trace:
        problem = "--record-trace takes a single target"
    elif args.trace is not None and args.backend != "replay":
        problem = f"--trace is read only by --backend replay (this run uses --backend {args.backend})"
    elif args.backend == "replay" and args.trace is None:
        problem = "--backend replay needs --trace FILE (a trace written with --record-trace)"
    elif json_to_stdout:
        problem = "--json - takes a single target; give a folder for a batch" if batch else None
    elif args.json is not None:
        problem = check_json_path(args.json, batch)
    if problem is None and args.html is not None:
        problem = check_json_path(args.html, batch, "--html", "report.html")
    if problem is None and args.trace_events is not None:
        problem = (
            "--trace-events takes a single target"
            if batch
            else check_json_path(args.trace_events, False, "--trace-events", "trace.json")
        )
    if problem is not None:
        errors.print("[bold red]error:[/] " + escape(problem), highlight=False)
        return EXIT_ERROR
    try:
        options = analyze_options(args)
    except MagnetonError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        return EXIT_ERROR
    write_failures = 0
    view = progress_view(args, sys.stderr)

    def show(item: BatchItem) -> None:
        nonlocal write_failures
        if view is not None:
            view.stop()
        if item.report is None:
            errors.print("[bold red]error:[/] " + escape(item.error or ""), highlight=False, markup=True)
            if args.debug and item.traceback:
                errors.print(escape(item.traceback), highlight=False)
            return
        if args.quiet:
            console.print(summary_line(item.report), highlight=False, soft_wrap=True)  # one line, never wrapped
        else:
            item.report.show(console, top=args.top)
            from magneton.expected.terminal import render_expected, render_throughput

            render_expected(item.report, console)
            render_throughput(item.report, console)
        if json_to_stdout:
            stdout.write(item.report.to_json())
            stdout.flush()
        elif args.json is not None:
            path = _report_path(args.json, item.target, batch)
            try:
                item.report.write(path)
            except OSError as err:
                write_failures += 1
                errors.print(f"[bold red]error:[/] cannot write {escape(str(path))}: {escape(str(err))}")
            else:
                console.print(f"JSON report written to {escape(str(path))}", highlight=False)
        if args.html is not None:
            from magneton.report.html import write_html

            path = _report_path(args.html, item.target, batch, ".html")
            try:
                write_html(path, item.report)
            except OSError as err:
                write_failures += 1
                errors.print(f"[bold red]error:[/] cannot write {escape(str(path))}: {escape(str(err))}")
            else:
                console.print(f"HTML report written to {escape(str(path))}", highlight=False)
        if args.trace_events is not None:
            console.print(f"trace events written to {escape(str(args.trace_events))}", highlight=False)

    # A workload's own print() must not corrupt the JSON on stdout.
    keep_stdout_clean = contextlib.redirect_stdout(sys.stderr) if json_to_stdout else contextlib.nullcontext()
    try:
        with keep_stdout_clean:
            items = analyze_batch(args.targets, options, on_item=show, progress=view)
    except KeyboardInterrupt:
        errors.print("[red]interrupted[/]: no partial report was written")
        return EXIT_INTERRUPTED
    finally:
        if view is not None:
            view.stop()
    failed = sum(1 for item in items if item.error) + write_failures
    reports = [item.report for item in items if item.report is not None]
    findings = sum(len(report.findings) for report in reports)
    console.print(
        f"analyzed {len(items)} target{'s' if len(items) != 1 else ''}: {len(reports)} ok, "
        f"{failed} error{'s' if failed != 1 else ''}, {findings} finding{'s' if findings != 1 else ''}",
        highlight=False,
    )
    return exit_code(reports, failed)
