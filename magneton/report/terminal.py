"""The rich terminal report. It renders the typed report model, so it and the JSON never disagree."""

from __future__ import annotations

import os

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from magneton.report.model import NodeSource, Report, RollupLine


def format_energy(joules: float) -> str:
    """Joules with an SI prefix that keeps three significant digits."""
    magnitude = abs(joules)
    for factor, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")):
        if magnitude >= factor:
            return f"{joules / factor:.3g} {unit}"
    return "0 J" if joules == 0 else f"{joules:.3g} J"


def format_time(seconds: float) -> str:
    magnitude = abs(seconds)
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if magnitude >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return "0 s" if seconds == 0 else f"{seconds * 1e9:.3g} ns"


def _short_path(path: str) -> str:
    """Library files by their import path (transformers/...), the user's relative to the cwd."""
    for marker in (f"site-packages{os.sep}", f"dist-packages{os.sep}"):
        if marker in path:
            return path.split(marker, 1)[1]
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _where(source: NodeSource | RollupLine | None) -> str:
    return f"{_short_path(source.file)}:{source.line}" if source else "?"


_NUMERIC_COLUMNS = ("#", "energy", "share", "time", "ops", "count")


def _header(report: Report) -> Panel:
    backend = report.backend
    estimated = backend.provenance == "estimated"
    provenance = Text(backend.provenance.upper(), style="bold yellow" if estimated else "bold green")
    lines = Text()
    lines.append("target     ", style="dim").append(str(report.target) + "\n")
    lines.append("device     ", style="dim").append(
        f"{report.device} — {report.device_description}, {report.threads} threads, torch {report.torch_version}\n"
    )
    lines.append("backend    ", style="dim").append(f"{backend.name} (").append(provenance)
    lines.append(f") — {backend.sensor}\n")
    if backend.formula:
        constants = backend.constants
        shown = ", ".join(f"{k}={v}" for k, v in constants.items())
        lines.append("formula    ", style="dim").append(f"{backend.formula}  [{shown}]\n")
    lines.append("why        ", style="dim").append(backend.reason + "\n")
    ci_low, ci_high = report.total_energy_ci_j or (report.total_energy_j, report.total_energy_j)
    lines.append("energy     ", style="dim").append(
        f"{format_energy(report.total_energy_j)} per forward pass "
        f"(trials {format_energy(ci_low)}–{format_energy(ci_high)}), "
        f"{format_time(report.total_time_s)}\n"
    )
    lines.append("active     ", style="dim").append(
        f"{format_energy(report.active_energy_j or 0.0)} above idle (idle power {report.idle_power_w or 0.0:.3g} W)\n"
    )
    coverage = report.coverage
    lines.append("coverage   ", style="dim").append(
        f"{coverage:.2f}" if coverage is not None else "n/a",
        style="bold" if coverage is not None and 0.8 <= coverage <= 1.25 else "bold red",
    )
    lines.append(
        f" (sum of {len(report.nodes)} operators / whole forward pass; "
        f"{report.unique_signatures} distinct signatures measured, {report.trials} trials)\n"
    )
    if coverage is not None and coverage < 0.8:
        lines.append(
            "           the rest of the forward pass is spent outside captured operators "
            "(Python and framework overhead, views, uncaptured pieces)\n",
            style="dim",
        )
    elif coverage is not None and coverage > 1.25:
        lines.append(
            "           operators cost more replayed alone than in the real pass "
            "(caches or fusion the replay cannot reproduce)\n",
            style="dim",
        )
    capture = report.capture
    lines.append("capture    ", style="dim").append(capture.method if capture else "n/a")
    for note in capture.notes if capture else []:
        lines.append("\n           " + note, style="dim")
    for note in report.measurement_notes:
        lines.append("\nmeasurement ", style="dim").append(note, style="dim")
    for warning in backend.warnings:
        lines.append("\nwarning    ", style="yellow").append(warning, style="yellow")
    return Panel(lines, title="Magneton energy report", title_align="left")


def short_op(op: str) -> str:
    """``aten.addmm.default`` -> ``addmm``; overloads other than default stay visible."""
    if op.startswith("aten."):
        op = op.removeprefix("aten.").removesuffix(".default")
    return op


def _operators_table(report: Report, top: int) -> Table:
    table = Table(title=f"Top {top} operators by energy (per forward pass)", title_justify="left")
    for column in ("#", "op", "energy", "share", "time", "source", "module"):
        table.add_column(column, justify="right" if column in _NUMERIC_COLUMNS else "left", overflow="fold")
    ranked = sorted((n for n in report.nodes if n.energy_j > 0), key=lambda n: -n.energy_j)
    for rank, node in enumerate(ranked[:top], 1):
        energy = format_energy(node.energy_j) + (" ~" if node.noisy else "")
        source = Text(_where(node.source))
        if node.source and node.source.code:
            source.append("\n" + node.source.code, style="dim")
        module = node.module_path or "(root)"
        if node.module_type:
            module += f" [{node.module_type}]"
        table.add_row(
            str(rank), short_op(node.op), energy, f"{node.share:.1%}", format_time(node.time_s), source, module
        )
    return table


def _line_table(report: Report, top: int) -> Table:
    table = Table(title="By source line", title_justify="left")
    for column in ("where", "energy", "share", "ops", "code"):
        table.add_column(column, justify="right" if column in _NUMERIC_COLUMNS else "left", overflow="fold")
    for group in report.rollups.by_line[:top]:
        table.add_row(
            _where(group),
            format_energy(group.energy_j),
            f"{group.share:.1%}",
            str(len(group.nodes)),
            group.code,
        )
    return table


def _op_table(report: Report, top: int) -> Table:
    table = Table(title="By operator type", title_justify="left")
    for column in ("op", "count", "energy", "share"):
        table.add_column(column, justify="right" if column in _NUMERIC_COLUMNS else "left")
    for op_group in report.rollups.by_op[:top]:
        if op_group.energy_j > 0:
            table.add_row(
                short_op(op_group.op), str(op_group.count), format_energy(op_group.energy_j), f"{op_group.share:.1%}"
            )
    return table


def _footer(report: Report) -> Text:
    backend = report.backend
    noisy = sum(1 for node in report.nodes if node.noisy)
    text = Text()
    if noisy:
        text.append(
            f"~ marks {noisy} noisy operators (confidence interval wider than ±25% of the median).\n", style="yellow"
        )
    if backend.provenance == "estimated":
        text.append("All energies are ESTIMATED from CPU time, not measured by a sensor.", style="bold yellow")
    else:
        text.append(f"All energies MEASURED by {backend.sensor}.", style="bold green")
    findings = report.findings
    text.append(f"\n{len(findings)} findings." if findings else "\nNo findings.")
    return text


def render_report(report: Report, console: Console, top: int = 15) -> None:
    console.print(
        Group(
            _header(report),
            _operators_table(report, top),
            _line_table(report, min(top, 10)),
            _op_table(report, min(top, 10)),
            _footer(report),
        )
    )
