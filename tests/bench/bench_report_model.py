"""Benchmark of the typed report model: encode, write, load and render a 10,000-node report.

Prints figures, asserts nothing. ``--quick`` uses 1,000 nodes (for a smoke run).
Run from the repository root: ``python tests/bench/bench_report_model.py``.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for the golden fixture

from golden.report_fixture import golden_report  # noqa: E402

from magneton.report.build import rollup_by_line, rollup_by_op  # noqa: E402
from magneton.report.load import load_report  # noqa: E402
from magneton.report.model import Report  # noqa: E402


def big_report(nodes: int) -> Report:
    """The golden report's nodes repeated (distinct ids, lines and modules) up to ``nodes``."""
    base = golden_report()
    template = [n for n in base.nodes if n.energy_j > 0]
    grown = []
    for i in range(nodes):
        node = template[i % len(template)]
        source = msgspec.structs.replace(node.source, line=i + 1) if node.source else None
        grown.append(msgspec.structs.replace(node, id=f"n{i}", source=source, module_path=f"h.{i}.m"))
    return msgspec.structs.replace(
        base,
        nodes=grown,
        rollups=msgspec.structs.replace(base.rollups, by_line=rollup_by_line(grown), by_op=rollup_by_op(grown)),
    )


def median_s(action: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    count = 1_000 if "--quick" in sys.argv else 10_000
    report = big_report(count)
    text = report.to_json()
    print(f"report with {count} nodes: {len(text) / 2**20:.1f} MiB of JSON")
    print(f"Report.to_json():              {median_s(report.to_json) * 1e3:8.1f} ms")
    print(f"json.dumps(to_dict()) instead: {median_s(lambda: json.dumps(report.to_dict(), indent=2)) * 1e3:8.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        print(f"Report.write() (validated):    {median_s(lambda: report.write(path)) * 1e3:8.1f} ms")
        print(f"load_report():                 {median_s(lambda: load_report(path)) * 1e3:8.1f} ms")
        print(f"json.loads() alone, untyped:   {median_s(lambda: json.loads(path.read_text())) * 1e3:8.1f} ms")

    def show() -> None:
        from rich.console import Console

        report.show(Console(file=io.StringIO(), width=120, color_system=None))

    print(f"Report.show() at 120 columns:  {median_s(show, repeats=3) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
