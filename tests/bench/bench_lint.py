"""Lint throughput over the installed transformers/models tree (run with `just bench`). Prints figures; asserts nothing.

Figures: files per second and lines per second with every rule on (experimental included), the share of files
the text prefilter skipped without parsing, findings per 1,000 lines, findings per rule, and a reproducible random
sample of 30 findings (seed 0) for hand-checking (docs/lint-sample.md holds our verdicts).

Usage: python tests/bench/bench_lint.py [--quick] [--sample N] [--root DIR]
  --quick   only the first 200 files (a smoke run, seconds)
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
from pathlib import Path


def transformers_models() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("transformers is not installed (pip install -e '.[hf]')")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sample", type=int, default=30)
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args()

    from magneton.rules import load_rules
    from magneton.rules.lint import lint_file
    from magneton.rules.source import iter_python_files

    root = args.root or transformers_models()
    files = [path for path, error in iter_python_files([str(root)]) if error is None]
    if args.quick:
        files = files[:200]
    rules = [rule for rule in load_rules().select(experimental=True) if rule.has_source()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    start_cpu, start = time.process_time(), time.perf_counter()
    results = [lint_file(path, rules) for path in files]
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - start_cpu

    lines = sum(r.lines for r in results)
    parsed = sum(1 for r in results if r.parsed)
    matches = [m for r in results for m in r.matches]
    errors = [r.error for r in results if r.error]
    print(f"tree: {root} ({len(files)} .py files, {lines} lines); {len(rules)} source rules (experimental included)")
    print(f"load average at start: {load:.2f} (the machine is shared: figures are inflated by other work)")
    print(f"wall: {wall_s:.1f} s -> {len(files) / wall_s:.1f} files/s, {lines / wall_s:.0f} lines/s")
    per_cpu_s = len(files) / cpu_s
    print(f"process CPU: {cpu_s:.1f} s -> {per_cpu_s:.1f} files per CPU-second (less sensitive to load)")
    print(f"prefilter: {len(files) - parsed} of {len(files)} files skipped without parsing ({parsed} parsed)")
    print(
        f"findings: {len(matches)} -> {1000 * len(matches) / max(lines, 1):.2f} per 1,000 lines; errors: {len(errors)}"
    )
    for error in errors[:5]:
        print(f"  error: {error}")
    for rule_id, count in sorted(collections.Counter(m.rule for m in matches).items()):
        print(f"  {rule_id}: {count}")
    sample = random.Random(0).sample(matches, min(args.sample, len(matches)))
    print(f"\nrandom sample of {len(sample)} findings (seed 0) to check by hand:")
    for index, match in enumerate(sorted(sample, key=lambda m: (m.rule, m.path, m.line)), 1):
        where = os.path.relpath(match.path, root)
        print(f"{index:2d}. {match.rule} {where}:{match.line}: {' '.join(match.expression.split())[:150]}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
