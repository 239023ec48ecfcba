"""Findings in the terminal report: what, how much energy, where (and the user's call site), what instead."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from magneton.findings import Finding, FindingSource


def _where(source: FindingSource | None) -> str:
    if source is None:
        return "(no source location)"
    return f"{source.file}:{source.line}"


def findings_text(findings: Sequence[Finding], top: int = 10) -> Text:
    """Plain rich Text (no markup parsing), so user code and paths print as they are.

    Each excess figure says where it came from in the finding's own words (``excess_provenance``): a rule's
    is an upper bound, an anomaly's may be predicted, a diff's or a knob's is measured.
    """
    from magneton.report.terminal import format_energy

    text = Text()
    if not findings:
        return text
    text.append(f"Findings ({len(findings)}), most excess energy first:\n", style="bold")
    for finding in findings[:top]:
        text.append(f"  {finding.rule or finding.kind} ", style="bold yellow")
        text.append(finding.title)
        if finding.potential:
            text.append("  [potential: these lines did not run]", style="dim")
        else:
            text.append(
                f"  {format_energy(finding.excess_energy_j)} ({finding.share:.1%}, {finding.excess_provenance})",
                style="cyan",
            )
        text.append("\n")
        source = finding.source
        text.append(f"      at {_where(source)}", style="dim")
        if source is not None and (source.expression or source.code):
            text.append(f"  {' '.join((source.expression or source.code).split())[:160]}")
        text.append("\n")
        if finding.call_site is not None:
            text.append(f"      called from {_where(finding.call_site)}  ", style="dim")
            text.append(finding.call_site.code)
            text.append("\n")
        if finding.suggestion:
            text.append(f"      instead: {finding.suggestion}\n", style="green")
    if len(findings) > top:
        text.append(f"  ... and {len(findings) - top} more (see the JSON report)\n", style="dim")
    return text


__all__ = ["findings_text"]
