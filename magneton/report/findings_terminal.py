"""Findings in the terminal report: what, how much energy, where (and the user's call site), what instead."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text


def _where(source: Mapping[str, Any] | None) -> str:
    if not source:
        return "(no source location)"
    return f"{source['file']}:{source['line']}"


def findings_text(findings: Sequence[Any], top: int = 10) -> Text:
    """Plain rich Text (no markup parsing), so user code and paths print as they are."""
    import msgspec

    from magneton.report.terminal import format_energy

    findings = [f if isinstance(f, Mapping) else msgspec.to_builtins(f) for f in findings]
    text = Text()
    if not findings:
        return text
    text.append(f"Findings ({len(findings)}), most excess energy first:\n", style="bold")
    for finding in findings[:top]:
        label = finding.get("rule") or finding.get("kind", "")
        text.append(f"  {label} ", style="bold yellow")
        text.append(str(finding.get("title", "")))
        if finding.get("potential"):
            text.append("  [potential: these lines did not run]", style="dim")
        else:
            text.append(
                f"  {format_energy(finding.get('excess_energy_j', 0.0))} "
                f"({finding.get('share', 0.0):.1%}, upper bound)",
                style="cyan",
            )
        text.append("\n")
        source = finding.get("source")
        text.append(f"      at {_where(source)}", style="dim")
        if source and (source.get("expression") or source.get("code")):
            text.append(f"  {' '.join(str(source.get('expression') or source.get('code')).split())[:160]}")
        text.append("\n")
        if finding.get("call_site"):
            text.append(f"      called from {_where(finding['call_site'])}  ", style="dim")
            text.append(str(finding["call_site"].get("code", "")))
            text.append("\n")
        if finding.get("suggestion"):
            text.append(f"      instead: {finding['suggestion']}\n", style="green")
    if len(findings) > top:
        text.append(f"  ... and {len(findings) - top} more (see the JSON report)\n", style="dim")
    return text


__all__ = ["findings_text"]
