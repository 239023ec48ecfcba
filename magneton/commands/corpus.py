"""``magneton corpus``: the slow/fast case corpus, validated and used to score the detectors."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from magneton.commands import EXIT_ERROR, EXIT_OK, add_allocator_argument, positive_int

NAME = "corpus"
HELP = "validate the slow/fast case corpus and score Magneton's detectors on it"
DESCRIPTION = (
    "Each corpus case is a slow and a fast variant of the same computation with a case.toml naming "
    "the expected rule and source lines. 'validate' checks that every case is a fair test; 'eval' runs "
    "analyze, diff, lint and fix on every case and scores detection, localisation, false positives and fixes."
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--case", dest="cases", action="append", default=[], metavar="ID", help="only this case (repeat)"
    )
    parser.add_argument("--quick", action="store_true", help="only the quick subset (the cases CI runs)")
    parser.add_argument("--root", type=Path, help="corpus folder (default: the corpus shipped with Magneton)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--backend", default="auto", help="energy backend (default auto)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="corpus_command", required=True)
    listing = sub.add_parser("list", help="list the cases")
    listing.add_argument("--root", type=Path, help="corpus folder")
    validate = sub.add_parser(
        "validate",
        help="check each case: loads, same outputs, slow costs more here, expected lines hold code",
    )
    _common(validate)
    validate.add_argument("--trials", type=positive_int, default=15, help="interleaved trials per case (default 15)")
    validate.add_argument("--no-measure", action="store_true", help="skip the energy comparison (fast)")
    add_allocator_argument(validate)
    validate.add_argument(
        "--write-measured",
        action="store_true",
        help="write each measured ratio into its case.toml [measured] table",
    )
    validate.add_argument(
        "--note",
        default="",
        help="with --write-measured: a note stored beside the figures (e.g. how busy the machine was)",
    )
    evaluate = sub.add_parser("eval", help="score analyze, diff, lint and fix on every case")
    _common(evaluate)
    evaluate.add_argument("--trials", type=positive_int, default=3, help="energy-pass trials per analysis (default 3)")
    evaluate.add_argument(
        "--diff-trials",
        type=positive_int,
        default=None,
        help="interleaved trials of the diff's region replay, which decides its verdicts (default 9)",
    )
    evaluate.add_argument(
        "--step",
        dest="steps",
        action="append",
        choices=("analyze", "diff", "fast", "lint", "fix"),
        metavar="STEP",
        help="run only this step (repeat): analyze, diff, fast, lint, fix (default: all)",
    )


def _load(args: argparse.Namespace) -> Any:
    from magneton.corpus.case import load_corpus

    return load_corpus(getattr(args, "root", None), ids=getattr(args, "cases", ()), quick=getattr(args, "quick", False))


def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _run_list(args: argparse.Namespace) -> int:
    from rich.console import Console

    from magneton.corpus.render import render_case_list

    corpus = _load(args)
    console = Console()
    render_case_list(corpus.cases, console)
    for error in corpus.errors:
        Console(stderr=True).print(f"[bold red]broken case:[/] {error}", markup=True, highlight=False)
    return EXIT_ERROR if corpus.errors else EXIT_OK


def _run_validate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from magneton.atomic import write_json_atomic
    from magneton.corpus.render import render_validation
    from magneton.corpus.validate import (
        ValidateOptions,
        machine_description,
        measured_table,
        validate_cases,
        write_measured,
    )

    corpus = _load(args)
    console, errors = Console(), Console(stderr=True)
    options = ValidateOptions(
        backend=args.backend, trials=args.trials, measure=not args.no_measure, allocator=args.allocator
    )
    with _progress(errors) as progress:
        task = progress.add_task("validating", total=len(corpus.cases))

        def advance(result: Any) -> None:
            progress.update(task, advance=1, description=f"validated {result.case_id}")

        results = validate_cases(corpus.cases, options, on_result=advance)
    render_validation(results, corpus.errors, console)
    if args.write_measured:
        machine = machine_description()
        by_id = {c.id: c for c in corpus.cases}
        for result in results:
            if result.energy is not None and result.status in ("ok", "failed"):
                write_measured(by_id[result.case_id].folder / "case.toml", measured_table(result, machine, args.note))
                console.print(f"wrote [measured] of {result.case_id}", highlight=False, markup=False)
    if args.json is not None:
        write_json_atomic(
            args.json,
            {
                "schema": "magneton.corpus-validate/1",
                "results": [r.to_json() for r in results],
                "errors": [str(e) for e in corpus.errors],
            },
        )
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "error", "skipped")}
    console.print(
        f"validated {len(results)} cases: {counts['ok']} ok, {counts['failed']} failed, {counts['error']} errors, "
        f"{counts['skipped']} skipped; {len(corpus.errors)} broken case folder(s)",
        highlight=False,
    )
    return EXIT_ERROR if counts["failed"] or counts["error"] or corpus.errors else EXIT_OK


def _run_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from magneton.atomic import write_json_atomic
    from magneton.corpus.detectors import STEP_TITLES, STEPS, EvalOptions
    from magneton.corpus.evaluate import evaluate
    from magneton.corpus.render import render_cases, render_summary
    from magneton.corpus.score import case_json, summary_json

    corpus = _load(args)
    console, errors = Console(), Console(stderr=True)
    options = EvalOptions(backend=args.backend, trials=args.trials)
    if args.diff_trials is not None:
        options = dataclasses.replace(options, diff_trials=args.diff_trials)
    with _progress(errors) as progress:
        task = progress.add_task("evaluating", total=len(corpus.cases))

        def on_step(case: Any, step: str) -> None:
            progress.update(task, description=f"{case.id}: {STEP_TITLES[step]}")

        def on_case(run: Any, score: Any) -> None:
            progress.update(task, advance=1)

        steps = tuple(args.steps) if args.steps else STEPS
        result = evaluate(corpus.cases, options, on_case=on_case, on_step=on_step, steps_to_run=steps)
    render_cases(result.scores, console)
    render_summary(result.summary, console)
    for error in corpus.errors:
        errors.print(f"[bold red]broken case:[/] {error}", markup=True, highlight=False)
    if args.json is not None:
        step_details = {
            run.case.id: {name: {"status": step.status, "detail": step.detail} for name, step in run.steps.items()}
            for run in result.runs
        }
        write_json_atomic(
            args.json,
            {
                "schema": "magneton.corpus-eval/1",
                **summary_json(result.summary),
                "per_case": [{**case_json(s), "steps": step_details.get(s.case_id, {})} for s in result.scores],
                "errors": [str(e) for e in corpus.errors],
            },
        )
        console.print(f"JSON written to {args.json}", highlight=False, markup=False)
    return EXIT_ERROR if corpus.errors else EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.corpus_command == "list":
        return _run_list(args)
    if args.corpus_command == "validate":
        return _run_validate(args)
    return _run_eval(args)
