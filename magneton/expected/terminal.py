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


def render_throughput(report: Report, console: Console, top: int = 5) -> None:
    """Achieved GFLOP/s and GB/s of the costliest operators, and where they sit under this machine's roofline."""
    from magneton.report.terminal import fold_nodes, short_op, where
    from magneton.report.units import format_energy

    expected = report.expected
    peak_flops = expected.peak_flops_per_s if expected is not None else None
    peak_bytes = expected.peak_bytes_per_s if expected is not None else None
    rows = fold_nodes(n for n in report.nodes if n.time_s > 0 and (n.flops or n.bytes))  # repeated layers: one row
    if not rows:
        return
    console.print(
        "[bold]Throughput[/] of the costliest operators"
        + (
            f" (roofline of this machine from calibration: {peak_flops / 1e9:.1f} GFLOP/s, {peak_bytes / 1e9:.1f} GB/s)"
            if peak_flops and peak_bytes
            else ""
        ),
        highlight=False,
    )
    for row in rows[:top]:
        node = row.nodes[0]  # per call: every folded node has the same op, shapes and line
        flops_per_s, bytes_per_s = node.flops / node.time_s, node.bytes / node.time_s
        parts = [f"{flops_per_s / 1e9:.2f} GFLOP/s", f"{bytes_per_s / 1e9:.2f} GB/s"]
        if node.flops and node.bytes:
            parts.append(f"{node.flops / node.bytes:.1f} FLOP/B")
        if peak_flops and peak_bytes and node.bytes:
            intensity = node.flops / node.bytes
            ceiling = min(peak_flops, intensity * peak_bytes) if node.flops else peak_bytes
            achieved = flops_per_s if node.flops else bytes_per_s
            bound = "compute-bound" if node.flops and intensity * peak_bytes >= peak_flops else "memory-bound"
            parts.append(f"{achieved / ceiling:.0%} of roofline ({bound})")
            if achieved > ceiling:  # the roofline is calibration's best rate, not the hardware's peak
                parts.append("faster than anything calibration measured (`magneton calibrate` measures more shapes)")
        source = node.source
        located = where(source.file, source.line) if source else "(no source line)"
        count = f" x{len(row.nodes)}" if len(row.nodes) > 1 else ""
        console.print(
            f"  {escape(short_op(node.op))}{count} at {escape(located)}: "
            f"{format_energy(node.energy_j)} per call ({node.provenance.kind}); " + ", ".join(parts),
            highlight=False,
        )
