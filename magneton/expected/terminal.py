"""Terminal lines for the expected-energy stage: the model's identity and accuracy, and anomaly findings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from magneton.report.model import Report


def render_expected(report: Report, console: Console) -> None:
    from magneton.report.terminal import format_energy

    expected = report.expected
    if expected is None:
        return
    if not expected.enabled:
        for note in expected.notes:
            console.print(f"[cyan]expected energy:[/] {escape(note)}", highlight=False)
        return
    parts = [
        f"MdAPE {figure.mdape:.0%} on {figure.on} ({figure.points})"
        for figure in reversed(expected.held_out)
        if figure.points and figure.mdape is not None
    ]
    console.print(
        f"[cyan]expected energy:[/] predicted by {escape(expected.model or '')}; held-out "
        f"{escape(', '.join(parts) or 'error not measured')}; {expected.calibration_sweep} calibration of "
        f"{expected.calibration_created_utc}; {expected.counterfactual_replays} counterfactual layout replays",
        highlight=False,
    )
    for note in expected.notes:
        console.print(f"  [dim]{escape(note)}[/]", highlight=False)
    anomalies = [f for f in report.findings if f.kind == "anomaly"]
    for rank, finding in enumerate(anomalies, 1):
        source = finding.source
        where = f"{source.file}:{source.line}" if source else "(no source line)"
        console.print(
            f"[bold magenta]anomaly {rank}[/] {escape(finding.title)} — {escape(where)}  "
            f"{format_energy(finding.energy_j)}, excess {format_energy(finding.excess_energy_j)} "
            f"({finding.share:.1%} of the total, {escape(finding.excess_provenance)})",
            highlight=False,
        )
        if source is not None and source.code:
            console.print(f"    [dim]{escape(source.code)}[/]", highlight=False)
        console.print(f"    why: {escape(finding.explanation)}", highlight=False)
        console.print(f"    fix: {escape(finding.suggestion)}", highlight=False)
