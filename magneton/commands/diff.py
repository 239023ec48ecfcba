"""``magneton diff A B``: match two programs by the values they compute and report the regions that waste energy."""

from __future__ import annotations

import argparse
from pathlib import Path

from magneton.commands import EXIT_ERROR, add_allocator_argument, positive_float, positive_int

NAME = "diff"
HELP = "compare two programs that compute the same thing, region by region"
DESCRIPTION = (
    "Run both targets, check that they take the same inputs and return the same outputs, match their "
    "operator graphs by value (layout-invariant fingerprints), replay every matched region of both sides "
    "interleaved, and report the regions where one side spends clearly more energy. "
    "Exit code: 0 no waste region, 1 waste found, 2 errors."
)


def threshold(text: str) -> float:
    value = float(text)
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"threshold is a fraction such as 0.10 or 0.05, got {text}")
    return value


def add_diff_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``magneton diff`` and ``magneton analyze --peer``."""
    parser.add_argument(
        "--threshold",
        type=threshold,
        default=0.10,
        help="energy gap above which a region is waste or a tradeoff (default 0.10; 0.05 allowed)",
    )
    parser.add_argument(
        "--allow-different-outputs",
        action="store_true",
        help="compare the targets even when their outputs differ beyond tolerance",
    )
    parser.add_argument(
        "--no-op-split",
        action="store_true",
        help="skip each side's per-operator energy pass (regions are still measured as units)",
    )
    parser.add_argument("--no-knobs", action="store_true", help="skip the configuration-knob diagnosis")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from magneton.measure.backends import BACKEND_NAMES

    parser.add_argument(
        "target_a", metavar="TARGET_A", help="the program to debug (file.py:function or module:function)"
    )
    parser.add_argument("target_b", metavar="TARGET_B", help="its peer computing the same thing")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto", help="energy source (default: auto)")
    parser.add_argument("--device", help="move both workloads to this torch device first")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the diff report JSON here")
    parser.add_argument(
        "--html", type=Path, metavar="PATH", help="write a self-contained HTML report of the diff here (opens offline)"
    )
    parser.add_argument("--trials", type=positive_int, default=5, help="interleaved trials (default 5)")
    parser.add_argument("--min-window-s", type=positive_float, help="shortest measurement window in seconds")
    parser.add_argument("--cpu-watts-per-core", type=positive_float, metavar="W", help="per-core power for estimate")
    parser.add_argument("--trace", type=Path, metavar="FILE", help="recorded trace for --backend replay")
    parser.add_argument("--top", type=positive_int, default=15, help="regions shown in the terminal (default 15)")
    parser.add_argument("--quiet", action="store_true", help="no terminal report, only errors and the summary")
    add_allocator_argument(parser)
    add_diff_options(parser)


def run_diff(args: argparse.Namespace, target_a: str, target_b: str) -> int:
    from rich.console import Console
    from rich.markup import escape

    from magneton.diff.engine import DiffOptions, diff_targets
    from magneton.diff.report import build_diff_report, diff_exit_code
    from magneton.errors import MagnetonError
    from magneton.report.diff_terminal import render_diff_report

    console = Console()
    errors = Console(stderr=True)
    options = DiffOptions(
        threshold=args.threshold,
        allow_different_outputs=args.allow_different_outputs,
        backend=args.backend,
        device=args.device,
        trials=args.trials,
        min_window_s=args.min_window_s,
        watts_per_core=args.cpu_watts_per_core,
        trace_path=args.trace,
        op_split=not args.no_op_split,
        knobs=not args.no_knobs,
        allocator=args.allocator,  # analyze --peer passes analyze's own --allocator
    )

    def progress(message: str) -> None:
        if not args.quiet:
            errors.print(f"[dim]{escape(message)}[/]", highlight=False)

    try:
        result = diff_targets(target_a, target_b, options, progress)
        report = build_diff_report(result)
    except MagnetonError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        return EXIT_ERROR
    except KeyboardInterrupt:
        errors.print("[red]interrupted[/]: no report was written")
        return EXIT_ERROR
    if not args.quiet:
        render_diff_report(report, console, top=args.top)
    if args.json is not None:
        try:
            report.write(args.json)
        except OSError as err:
            errors.print(f"[bold red]error:[/] cannot write {escape(str(args.json))}: {escape(str(err))}")
            return EXIT_ERROR
        console.print(f"JSON report written to {args.json}", highlight=False)
    html_path = getattr(args, "html", None)  # analyze --peer passes analyze's options, which have --html too
    if html_path is not None:
        try:
            report.write_html(html_path)
        except OSError as err:
            errors.print(f"[bold red]error:[/] cannot write {escape(str(html_path))}: {escape(str(err))}")
            return EXIT_ERROR
        console.print(f"HTML report written to {escape(str(html_path))}", highlight=False)
    waste = len(report.findings)
    regions = len(report.regions or []) + (len(report.diff.unmatched) if report.diff else 0)
    console.print(
        f"diff {target_a} vs {target_b}: {regions} regions, {waste} waste finding{'s' if waste != 1 else ''}",
        highlight=False,
        markup=False,
    )
    return diff_exit_code(report)


def run(args: argparse.Namespace) -> int:
    return run_diff(args, args.target_a, args.target_b)
