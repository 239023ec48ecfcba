"""Terminal rendering of a diff report: both sides, the regions table, verdicts and findings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from magneton.report.terminal import format_energy, format_time
from magneton.report.terminal import short_path as _short_path

if TYPE_CHECKING:
    from magneton.report.model import Report

_VERDICT_STYLE = {"waste": "bold red", "tradeoff": "yellow", "same": "green", None: "dim"}


def _where(source: dict[str, Any] | None) -> str:
    return f"{_short_path(source['file'])}:{source['line']}" if source else "?"


def _ops(names: list[str], limit: int = 4) -> str:
    if not names:
        return "—"
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)})" if len(names) > limit else "")


def _costing(split: list[dict[str, Any]]) -> list[str]:
    return [item["op"].removeprefix("aten.").split(".")[0] for item in split if not item["zero_cost"]]


def _header(report: dict[str, Any]) -> Panel:
    backend = report["backend"]
    estimated = backend["provenance"] == "estimated"
    text = Text()
    diff = report["diff"]
    for side in diff["sides"]:
        text.append(f"side {side['label']}     ", style="dim").append(side["target"])
        text.append(
            f"   {format_energy(side['total_energy_j'])} per pass, {format_time(side['total_time_s'])}, "
            f"{side['ops']} ops ({side['matched_share']:.0%} in matched regions), "
            f"captured with {side['capture']['method']}\n"
        )
    text.append("backend    ", style="dim").append(f"{backend['name']} (")
    text.append(backend["provenance"].upper(), style="bold yellow" if estimated else "bold green")
    text.append(f", {backend['sensor']})\n")
    matched, unmatched = len(report["regions"]), len(diff["unmatched"])
    text.append("matching   ", style="dim").append(
        f"{matched} matched regions, {unmatched} unmatched, from {diff['pairs']} paired values in "
        f"{diff['matching_time_s'] * 1e3:.0f} ms; threshold {diff['threshold']:.0%}"
    )
    for side in diff["sides"]:
        coverage = side["region_coverage"]
        if coverage is not None:
            text.append(f"\nregions of side {side['label']} add up to {coverage:.0%} of its whole pass", style="dim")
    return Panel(text, title="magneton diff", expand=False)


def _settings(report: dict[str, Any]) -> Table | None:
    if not report["diff"]["setting_differences"]:
        return None
    table = Table(title="global settings that differ", title_justify="left")
    table.add_column("setting")
    table.add_column("side A")
    table.add_column("side B")
    for diff in report["diff"]["setting_differences"]:
        table.add_row(escape(diff["name"]), escape(str(diff["a"])), escape(str(diff["b"])))
    return table


def _regions(report: dict[str, Any], top: int) -> Table:
    rows = [r for r in report["regions"] if r["a_energy_j"] > 0 or r["b_energy_j"] > 0]
    rows.sort(key=lambda r: -(r["excess_energy_j"] or 0.0))
    table = Table(
        title=f"regions (top {min(top, len(rows))} of {len(report['regions'])} by excess energy)", title_justify="left"
    )
    for column in ("#", "verdict", "A energy", "B energy", "A/B", "side A ops", "side B ops", "A line", "B line"):
        table.add_column(column, justify="right" if column in ("#", "A energy", "B energy", "A/B") else "left")
    for region in rows[:top]:
        a_ops, b_ops = _costing(region["a_split"]), _costing(region["b_split"])
        a_line = next((s["source"] for s in region["a_split"] if not s["zero_cost"] and s["source"]), None)
        b_line = next((s["source"] for s in region["b_split"] if not s["zero_cost"] and s["source"]), None)
        verdict = region["verdict"]
        table.add_row(
            str(region["id"]),
            Text(verdict, style=_VERDICT_STYLE.get(region["verdict"], "dim")),
            format_energy(region["a_energy_j"]),
            format_energy(region["b_energy_j"]),
            f"{region['ratio']:.2f}" if region["ratio"] is not None else "∞",
            escape(_ops(a_ops)),
            escape(_ops(b_ops)),
            escape(_where(a_line)),
            escape(_where(b_line)),
        )
    return table


def _findings(report: dict[str, Any], console: Console) -> None:
    if not report["findings"]:
        console.print("[green]no waste region[/]: no region differs by more than the threshold with confidence")
        return
    for number, finding in enumerate(report["findings"], 1):
        console.print(
            f"[bold red]{number}. {escape(finding['title'])}[/] — excess {format_energy(finding['excess_energy_j'])} "
            f"({finding['share']:.1%} of side {finding['details']['side']}'s pass, {finding['energy_provenance']})"
        )
        side = finding["details"]["side"]
        peer = "B" if side == "A" else "A"
        for label, source in ((side, finding["source"]), (peer, finding["peer_source"])):
            if source:
                console.print(
                    f"   side {label}: {escape(_where(source))}  [dim]{escape(source.get('code') or '')}[/]",
                    highlight=False,
                )
        if finding["call_site"]:
            console.print(f"   called from {escape(_where(finding['call_site']))}", highlight=False)
        console.print(f"   {escape(finding['explanation'])}", highlight=False)
        if finding["suggestion"]:
            console.print(f"   [cyan]suggestion:[/] {escape(finding['suggestion'])}", highlight=False)


def render_diff_report(typed: Report, console: Console, top: int = 15) -> None:
    report = typed.to_dict()
    console.print(_header(report))
    settings = _settings(report)
    if settings is not None:
        console.print(settings)
    for note in report["measurement_notes"]:
        console.print(f"[dim]note: {escape(note)}[/]")
    console.print(_regions(report, top))
    for region in report["diff"]["unmatched"]:
        console.print(
            f"[dim]unmatched ({escape(region['part'])}): side A {escape(_ops(region['a_ops']))}, "
            f"side B {escape(_ops(region['b_ops']))} — their results pair with nothing on the other side[/]",
            highlight=False,
        )
    _findings(report, console)


__all__ = ["render_diff_report"]
