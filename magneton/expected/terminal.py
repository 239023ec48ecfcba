"""Terminal lines for the expected-energy stage: the model's identity and accuracy, and anomaly findings."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


def _energy(joules: float) -> str:
    from magneton.report.terminal import format_energy

    return format_energy(joules)


def render_expected(report: dict[str, Any], console: Console) -> None:
    expected = report.get("expected")
    if not expected:
        return
    if not expected.get("enabled"):
        for note in expected.get("notes", []):
            console.print(f"[cyan]expected energy:[/] {escape(note)}", highlight=False)
        return
    heldout = expected["heldout"]
    parts = []
    for key in ("models", "shapes"):
        figure = heldout[key]
        if figure["points"] and figure["mdape"] is not None:
            parts.append(f"MdAPE {figure['mdape']:.0%} on {figure['on']} ({figure['points']})")
    calibration = expected["calibration"]
    console.print(
        f"[cyan]expected energy:[/] predicted by {escape(expected['model'])}; held-out "
        f"{escape(', '.join(parts) or 'error not measured')}; {calibration['sweep']} calibration of "
        f"{calibration['created_utc']}; {expected['counterfactual_replays']} counterfactual layout replays",
        highlight=False,
    )
    for note in expected.get("notes", []):
        console.print(f"  [dim]{escape(note)}[/]", highlight=False)
    anomalies = [f for f in report["findings"] if f["kind"] == "anomaly"]
    for rank, finding in enumerate(anomalies, 1):
        source = finding.get("source") or {}
        where = f"{source.get('file')}:{source.get('line')}" if source else "(no source line)"
        console.print(
            f"[bold magenta]anomaly {rank}[/] {escape(finding['title'])} — {escape(where)}  "
            f"{_energy(finding['energy_j'])}, excess {_energy(finding['excess_energy_j'])} "
            f"({finding['share']:.1%} of the total, {escape(finding['excess_provenance'])})",
            highlight=False,
        )
        if source.get("code"):
            console.print(f"    [dim]{escape(source['code'])}[/]", highlight=False)
        console.print(f"    why: {escape(finding['explanation'])}", highlight=False)
        console.print(f"    fix: {escape(finding['suggestion'])}", highlight=False)
