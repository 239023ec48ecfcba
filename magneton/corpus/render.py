"""Terminal tables for ``magneton corpus validate`` and ``magneton corpus eval``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from magneton.corpus.case import Case, CaseError
from magneton.corpus.detectors import STEP_TITLES
from magneton.corpus.score import CaseScore, Detection, Recall, Summary
from magneton.corpus.validate import CaseValidation

_STATUS_STYLE = {"ok": "green", "failed": "red", "error": "red", "skipped": "yellow"}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_validation(results: Sequence[CaseValidation], errors: Sequence[CaseError], console: Console) -> None:
    table = Table(title="corpus validate", show_lines=False)
    for column in ("case", "status", "slow/fast energy", "max output diff", "problem or note"):
        table.add_column(column, overflow="fold")
    for result in results:
        style = _STATUS_STYLE.get(result.status, "")
        ratio = "—"
        if result.energy is not None:
            r = result.energy.ratio
            ratio = f"{r.median:.2f}× ({r.low:.2f}–{r.high:.2f}, {result.energy.provenance})"
        failed = [c for c in result.checks if not c.passed]
        note = "; ".join(f"{c.name}: {c.detail}" for c in failed) if failed else result.reason
        diff = "—" if result.max_relative_difference is None else f"{result.max_relative_difference:.1e}"
        table.add_row(escape(result.case_id), f"[{style}]{result.status}[/]", ratio, diff, escape(note))
    console.print(table)
    for error in errors:
        console.print(f"[bold red]broken case:[/] {escape(str(error))}")


def _detection(d: Detection) -> str:
    if d.status != "ok":
        return f"[dim]{escape(d.status)}[/]"
    if d.rank is None:
        return "[red]miss[/]"
    where = "line" if d.on_line else "rule"
    style = "green" if d.rank <= 3 else "yellow"
    return f"[{style}]#{d.rank}[/] ({where}{' + rule' if d.on_line and d.rule_ok else ''})"


def render_cases(scores: Sequence[CaseScore], console: Console) -> None:
    table = Table(title="corpus eval: per case")
    for column in ("case", "analyze", "diff", "excess/gap", "fast FPs", "lint", "fix"):
        table.add_column(column, overflow="fold")
    for s in scores:
        if s.skipped:
            table.add_row(escape(s.case_id), f"[yellow]skipped[/]: {escape(s.skipped)}", "", "", "", "", "")
            continue
        gap = "—"
        if s.diff_excess_j is not None and s.diff_gap_j:
            gap = f"{s.diff_excess_j / s.diff_gap_j:.2f}"
        fps = str(len(s.false_positives)) if s.fast_status == "ok" else f"[dim]{s.fast_status}[/]"
        lint = (
            ("[green]hit[/]" if s.lint_hit else "[red]miss[/]") if s.lint_status == "ok" else f"[dim]{s.lint_status}[/]"
        )
        if s.fix_status != "ok":
            fix = f"[dim]{escape(s.fix_status)}[/]"
        elif s.fix_verified:
            fix = f"[green]verified[/] {_fmt((s.fix_saving_share or 0) * 100, 1)}%"
        else:
            fix = "[yellow]not verified[/]"
        table.add_row(escape(s.case_id), _detection(s.analyze), _detection(s.diff), gap, fps, lint, fix)
    console.print(table)


def _recall_row(name: str, r: Recall) -> tuple[str, ...]:
    if r.evaluated == 0:
        return (name, "0", _fmt(None), _fmt(None), _fmt(None), str(r.not_evaluated))
    return (name, str(r.evaluated), _fmt(r.at_1), _fmt(r.at_3), _fmt(r.localised), str(r.not_evaluated))


def render_summary(summary: Summary, console: Console) -> None:
    table = Table(title="corpus eval: detection")
    for column in ("detector", "cases run", "recall@1", "recall@3", "localisation", "not run"):
        table.add_column(column)
    table.add_row(*_recall_row(STEP_TITLES["analyze"], summary.analyze))
    table.add_row(*_recall_row(STEP_TITLES["diff"], summary.diff))
    console.print(table)
    if summary.rules:
        rules = Table(title="corpus eval: per rule")
        for column in ("rule", "cases expecting it", "hits", "false firings", "precision", "recall"):
            rules.add_column(column)
        for r in summary.rules:
            name = escape(r.rule) + ("" if r.in_catalog else " [dim](no catalog rule)[/]")
            rules.add_row(name, str(r.expected), str(r.hits), str(r.false_firings), _fmt(r.precision), _fmt(r.recall))
        console.print(rules)
    lines = [
        f"cases: {summary.cases} ({summary.skipped} skipped on this machine)",
        f"lint on the expected line: {summary.lint_hits}/{summary.lint_evaluated}",
        f"false positives (>= 5% of energy on fast variants): {summary.false_positives} in "
        f"{summary.false_positive_cases}/{summary.fast_evaluated} fast variants",
        f"diff excess within ±50% of the measured gap: {summary.gap_close}/{summary.gap_evaluated}",
        f"fixes verified: {summary.fixes_verified}/{summary.fixes_attempted}, "
        f"total verified saving {summary.verified_saving_j:.4g} J per call",
    ]
    for line in lines:
        console.print(line, highlight=False)


def render_case_list(cases: Sequence[Case], console: Console) -> None:
    table = Table(title="corpus cases")
    for column in ("case", "category", "system", "device", "expected", "ratio"):
        table.add_column(column, overflow="fold")
    for case in cases:
        device = case.device.requires + (f" +{','.join(case.device.extras)}" if case.device.extras else "")
        ratio = _fmt(case.measured.ratio) if case.measured.ratio else "—"
        table.add_row(
            escape(case.id),
            case.category,
            escape(case.reference.system),
            device,
            escape(", ".join(case.expected.rules)),
            ratio,
        )
    console.print(table)
