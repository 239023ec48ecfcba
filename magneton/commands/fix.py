"""``magneton fix``: show (and optionally apply and verify) the fixes the rule catalog knows."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from magneton.commands import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, positive_int
from magneton.commands.lint import add_rule_arguments

NAME = "fix"
HELP = "show the catalog's fixes as a unified diff; --apply writes them, --verify measures them"
DESCRIPTION = (
    "For each file (or the file of a TARGET such as model.py:workload), print the unified diff of every fixer hit. "
    "--apply rewrites the file atomically, only if the result parses, keeping permissions and line endings; "
    "running it again changes nothing. --verify (TARGET only) runs the workload before and after the fix on the "
    "same inputs and reports the measured saving and the largest output difference; with --apply, a file is "
    "written only when the fix is verified. Exit code: 0 nothing to fix, 1 fixes shown or applied, 2 errors."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "items", nargs="+", metavar="TARGET|PATH", help="file.py:function, package.module:function, file or folder"
    )
    add_rule_arguments(parser)
    parser.add_argument("--apply", action="store_true", help="write the fixed files")
    parser.add_argument("--verify", action="store_true", help="measure the fix on the workload (TARGET only)")
    parser.add_argument("--backend", default="auto", help="energy backend for --verify (default: auto)")
    parser.add_argument("--trials", type=positive_int, default=7, help="interleaved trials for --verify (default 7)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the fixes (and verifications) as JSON")


def _is_target(item: str) -> bool:
    return not os.path.exists(item) and ":" in item


def target_path(target: str) -> Path:
    """The file a target's code lives in."""
    import importlib.util

    from magneton.errors import WorkloadError
    from magneton.workload import split_target

    where, _ = split_target(target)
    if where.endswith(".py") or "/" in where:
        return Path(where)
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError) as err:
        raise WorkloadError(target, f"cannot find module {where}: {err}") from err
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise WorkloadError(target, f"module {where} has no Python source file to fix")
    return Path(spec.origin)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from magneton.atomic import write_json_atomic
    from magneton.errors import MagnetonError
    from magneton.fix.apply import FixError, fix_file, write_fixed
    from magneton.rules import load_rules
    from magneton.rules.source import iter_python_files

    console = Console(stderr=True, soft_wrap=True)
    rules = [r for r in load_rules(args.rules).select(args.rule, args.experimental) if r.fixable]
    jobs: list[tuple[str, str | None]] = []  # (file, target) pairs
    errors = 0
    for item in args.items:
        if _is_target(item):
            try:
                jobs.append((str(target_path(item)), item))
            except MagnetonError as err:
                console.print(f"[bold red]error:[/] {escape(str(err))}")
                errors += 1
        else:
            for path, problem in iter_python_files([item]):
                if problem:
                    console.print(f"[bold red]error:[/] {escape(problem)}")
                    errors += 1
                else:
                    jobs.append((path, None))
    if args.verify and not any(target for _, target in jobs):
        console.print("[bold red]error:[/] --verify needs a TARGET (file.py:function) to run")
        return EXIT_ERROR
    changed = 0
    records = []
    for path, target in jobs:
        result = fix_file(path, rules)
        if result.error:
            console.print(f"[bold red]error:[/] {escape(result.error)}")
            errors += 1
            continue
        if not result.changed:
            continue
        changed += 1
        sys.stdout.write(result.diff())
        record: dict[str, object] = {
            "file": path,
            "fixes": [{"rule": f.rule, "line": f.line, "before": f.before, "after": f.after} for f in result.applied],
            "diff": result.diff(),
        }
        verified = True
        if args.verify and target is not None:
            from magneton.fix.verify import verify_fix

            try:
                verification = verify_fix(target, Path(path), result.fixed, backend=args.backend, trials=args.trials)
            except MagnetonError as err:
                console.print(f"[bold red]error:[/] verifying {escape(target)}: {escape(str(err))}")
                errors += 1
                continue
            record["verification"] = verification.to_json()
            verified = verification.verified
            _print_verification(console, verification)
        if args.apply and (verified or not args.verify):
            try:
                write_fixed(Path(path), result.original, result.fixed)
            except (FixError, OSError) as err:
                console.print(f"[bold red]error:[/] {escape(str(err))}")
                errors += 1
                continue
            record["applied"] = True
            console.print(f"applied {len(result.applied)} fix(es) to {escape(path)}", highlight=False)
        elif args.apply:
            console.print(f"not applied to {escape(path)}: the fix was not verified", highlight=False)
        records.append(record)
    if args.json is not None:
        write_json_atomic(args.json, {"schema": "magneton.fix/1", "files": records})
    console.print(f"{changed} file(s) with fixes, {errors} error(s)", highlight=False)
    if errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if changed else EXIT_OK


def _print_verification(console: object, v: object) -> None:
    from rich.console import Console

    from magneton.fix.verify import Verification

    assert isinstance(console, Console) and isinstance(v, Verification)
    kind = "MEASURED" if v.provenance == "measured" else "ESTIMATED"
    console.print(
        f"{v.target}: before {v.before_j.median:.4g} J/call, after {v.after_j.median:.4g} J/call ({kind}, {v.sensor})",
        highlight=False,
        markup=False,
    )
    console.print(
        f"  saving {v.saving_j.median:.4g} J/call ({v.saving_fraction:.1%}), "
        f"{v.saving_j.confidence:.0%} interval [{v.saving_j.low:.4g}, {v.saving_j.high:.4g}] J/call; "
        f"largest output difference {v.max_relative_difference:.2e} relative ({v.max_abs_difference:.2e} absolute)",
        highlight=False,
        markup=False,
    )
    if v.contended_trials or v.remeasured_trials:
        console.print(
            f"  busy machine: {v.remeasured_trials} trial pair(s) waited for a CPU and were measured again; "
            f"{v.contended_trials} kept pair(s) still waited",
            highlight=False,
            markup=False,
        )
    console.print(f"  {v.verdict()}", highlight=False, markup=False)
