"""``magneton lint``: static rule checks on source files. Never imports or runs the code it checks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from magneton.commands import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK

NAME = "lint"
HELP = "check source files against the rule catalog (static; runs nothing)"
DESCRIPTION = (
    "Check Python files (or folders, recursively) for known energy-waste patterns with the source rules of the "
    "catalog. Nothing is imported or executed. Suppress a finding with `# magneton: ignore[MAG123]` on its line. "
    "Exit code: 0 nothing found, 1 findings, 2 a file could not be read or parsed (the others are still checked)."
)


def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """Rule selection, shared by lint, fix and rules."""
    parser.add_argument(
        "--rules", action="append", default=[], metavar="DIR", type=Path, help="also load rules from DIR (repeatable)"
    )
    parser.add_argument("--rule", action="append", default=[], metavar="ID", help="run only this rule (repeatable)")
    parser.add_argument("--experimental", action="store_true", help="also run experimental rules (MAG9xx)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="Python files or folders")
    add_rule_arguments(parser)
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="FILE", help="write findings as JSON to FILE (or stdout without FILE)"
    )
    parser.add_argument("--sarif", type=Path, metavar="FILE", help="write a SARIF 2.1.0 log to FILE")
    parser.add_argument("--quiet", action="store_true", help="only errors and the summary line")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from magneton.atomic import write_json_atomic
    from magneton.report.lint import render_file, summary_line
    from magneton.rules import load_rules
    from magneton.rules.lint import lint_paths

    json_to_stdout = args.json == "-"
    console = Console(stderr=json_to_stdout, soft_wrap=True)
    ruleset = load_rules(args.rules)
    rules = [r for r in ruleset.select(args.rule, args.experimental) if r.has_source()]
    show = None if args.quiet else (lambda file: render_file(file, console))
    result = lint_paths(args.paths, rules, on_file=show)
    if args.quiet:
        for error in result.errors:
            Console(stderr=True).print(f"error: {error}", markup=False, highlight=False)
    if args.json is not None:
        payload = result.to_json(rules)
        if json_to_stdout:
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        else:
            write_json_atomic(Path(args.json), payload)
    if args.sarif is not None:
        from magneton.report.sarif import lint_sarif

        write_json_atomic(args.sarif, lint_sarif(result, rules))
    console.print(summary_line(result), highlight=False, markup=False)
    if result.errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if result.matches else EXIT_OK
