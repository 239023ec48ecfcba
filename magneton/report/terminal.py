"""The rich terminal report. It renders the typed report model, so it and the JSON never disagree.

Text that did not come from Magneton (code, paths, module names, notes carrying
exception messages) goes into ``rich.text.Text`` objects, never into markup
strings, so brackets print as they are and ``[/...]`` cannot break a run.

The view reads well at 80, 120 and 160 columns: repeated layers fold into one
row with a count, code is shortened with an ellipsis rather than wrapped, and a
``file:line`` is never split (a long path loses its start instead).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from statistics import median

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from magneton.findings import Finding
from magneton.report.model import Node, Report
from magneton.report.units import format_energy, format_time, short_path

ELLIPSIS = "…"
_CONTROL = {c: f"\\x{c:02x}" for c in range(0x20)} | {0x7F: "\\x7f"}


def one_line(text: str) -> str:
    """Foreign text made safe for one terminal line: control characters (newlines, ESC) shown escaped."""
    text = text.translate(_CONTROL)
    # C1 controls and lone surrogates cannot be printed either.
    return "".join(c if unicodedata.category(c) not in ("Cc", "Cs") else f"\\u{ord(c):04x}" for c in text)


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells, ending in an ellipsis when cut."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    out, used = [], 0
    for char in text:
        size = cell_len(char)
        if used + size > width - 1:
            break
        out.append(char)
        used += size
    return "".join(out) + ELLIPSIS


def clip_left(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` cells: the end (a file name and line) stays whole."""
    if cell_len(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for char in reversed(text):
        size = cell_len(char)
        if used + size > width - 1:
            break
        out.append(char)
        used += size
    return ELLIPSIS + "".join(reversed(out))


def where(file: str, line: int, width: int | None = None) -> str:
    text = one_line(f"{short_path(file)}:{line}")
    return text if width is None else clip_left(text, width)


def short_op(op: str) -> str:
    """``aten.addmm.default`` -> ``addmm``; overloads other than default stay visible."""
    if op.startswith("aten."):
        op = op.removeprefix("aten.").removesuffix(".default")
    return op


# ------------------------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Layout:
    """Column budget for one terminal width (80, 120 and 160 columns are the tested tiers)."""

    width: int
    op: int
    where: int
    module: int  # 0: no module column
    time: bool

    @classmethod
    def for_width(cls, width: int) -> Layout:
        if width < 110:
            return cls(width, op=12, where=22, module=0, time=False)
        if width < 150:
            return cls(width, op=18, where=28, module=20, time=False)
        return cls(width, op=24, where=40, module=28, time=True)


def _table(title: str) -> Table:
    return Table(
        title=Text(title, style="bold"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        show_edge=False,
    )


def _fit_last_column(widths: Sequence[int], layout: Layout) -> int:
    """Cells left for the last column once the others are placed (2 cells between columns: collapsed padding)."""
    return max(8, layout.width - sum(widths) - 2 * len(widths))


# ------------------------------------------------------------------------------------------------ folding


@dataclass(frozen=True)
class OperatorRow:
    """One row of the operators table: a node, or several equal nodes of repeated layers."""

    nodes: tuple[Node, ...]

    @property
    def first(self) -> Node:
        return self.nodes[0]

    @property
    def energy_j(self) -> float:
        return sum(n.energy_j for n in self.nodes)

    @property
    def time_s(self) -> float:
        return sum(n.time_s for n in self.nodes)

    @property
    def share(self) -> float:
        return sum(n.share for n in self.nodes)

    @property
    def noisy(self) -> bool:
        return any(n.noisy for n in self.nodes)

    @property
    def module(self) -> str:
        return fold_paths([n.module_path for n in self.nodes])


_DIGITS = re.compile(r"\d+")
# A training step's operators say their phase; forward ones stay plain.
_PHASE_TAG = {"backward": "bwd ", "optimizer": "opt "}


def _fold_key(node: Node) -> tuple[object, ...]:
    source = (node.source.file, node.source.line) if node.source else None
    inputs = tuple((tuple(t.shape), t.dtype, tuple(t.stride)) for t in node.inputs)
    return (node.op, inputs, source, _DIGITS.sub("#", node.module_path), node.module_type, node.phase)


def fold_nodes(nodes: Iterable[Node]) -> list[OperatorRow]:
    """Group measured nodes that repeat across layers (same op, inputs, line and module pattern)."""
    groups: dict[tuple[object, ...], list[Node]] = {}
    for node in nodes:
        if node.energy_j > 0:
            groups.setdefault(_fold_key(node), []).append(node)
    rows = [OperatorRow(tuple(members)) for members in groups.values()]
    return sorted(rows, key=lambda row: -row.energy_j)


def fold_paths(paths: Sequence[str]) -> str:
    """``h.0.attn``, ``h.1.attn``, ``h.2.attn`` -> ``h.{0-2}.attn``; differing names -> ``*``."""
    if len(set(paths)) <= 1:
        return paths[0] if paths else ""
    split = [p.split(".") for p in paths]
    if len({len(parts) for parts in split}) != 1:
        return "*"
    folded = []
    for column in zip(*split, strict=True):
        values = sorted(set(column))
        if len(values) == 1:
            folded.append(values[0])
        elif all(v.isdigit() for v in values):
            numbers = sorted(int(v) for v in values)
            contiguous = numbers == list(range(numbers[0], numbers[-1] + 1))
            folded.append(f"{{{numbers[0]}-{numbers[-1]}}}" if contiguous else "{" + ",".join(map(str, numbers)) + "}")
        else:
            folded.append("*")
    return ".".join(folded)


# ------------------------------------------------------------------------------------------------ header


def _interval(report: Report) -> str:
    """What the total's interval is: its confidence, its method, over how many samples."""
    confidence = report.total_energy_ci_confidence
    trials = report.total_energy_trials if report.total_energy_trials is not None else report.trials
    if report.total_energy_ci_j is None or trials < 2 or not confidence:
        return f"no interval ({trials} trial{'s' if trials != 1 else ''})"
    low, high = report.total_energy_ci_j
    return f"{confidence:.0%} CI over {trials} trials: {format_energy(low)}–{format_energy(high)}"


def _provenance_text(report: Report) -> Text:
    kind = report.energy_provenance.kind
    style = "bold green" if kind == "measured" else "bold yellow"
    return Text(kind.upper(), style=style)


def _header(report: Report) -> Panel:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(label: str, *parts: str | Text) -> None:
        value = Text()
        for part in parts:
            value.append(part if isinstance(part, Text) else Text(one_line(part)))
        grid.add_row(label, value)

    target = report.target if report.target is not None else " vs ".join(report.targets or [])
    row("target", target)
    threads = f", {report.threads} threads" if report.threads is not None else ""
    torch_version = f", torch {report.torch_version}" if report.torch_version else ""
    description = f" — {report.device_description}" if report.device_description else ""
    row("device", f"{report.device}{description}{threads}{torch_version}")
    backend = report.backend
    row("backend", f"{backend.name} (", _provenance_text(report), f") — {backend.sensor}")
    provenance = report.energy_provenance
    if provenance.kind == "replayed" and provenance.trace_path:
        row("trace", provenance.trace_path)
    if backend.formula:
        row("formula", backend.formula)
        shown = ", ".join(
            f"{key}={value}" for key, value in backend.constants.items() if not isinstance(value, (dict, list))
        )
        if shown:
            row("constants", shown)
    if backend.reason:
        row("why", backend.reason)
    row("energy", f"{format_energy(report.total_energy_j)} per {report.energy_scope.removeprefix('one ')}")
    row("", f"{_interval(report)}; {format_time(report.total_time_s)}")
    if report.active_energy_j is not None and report.idle_power_w is not None:
        row("active", f"{format_energy(report.active_energy_j)} above idle (idle power {report.idle_power_w:.3g} W)")
    coverage = report.coverage
    coverage_text = Text(
        f"{coverage:.2f}" if coverage is not None else "n/a",
        style="bold" if coverage is not None and 0.8 <= coverage <= 1.25 else "bold red",
    )
    row(
        "coverage",
        coverage_text,
        f" = sum of {len(report.nodes)} operators / whole run; {report.unique_signatures} distinct signatures",
    )
    if coverage is not None and coverage < 0.8:
        row("", "the rest is spent outside captured operators (Python and framework overhead, uncaptured pieces)")
    elif coverage is not None and coverage > 1.25:
        row("", "operators cost more replayed alone than in the real run (caches or fusion the replay lacks)")
    if report.capture is not None:
        row("capture", report.capture.method)
        for note in report.capture.notes:
            row("", note)
    for note in report.measurement_notes:
        row("measurement", note)
    _measurement_context(report, row, grid)
    for note in backend.notes:
        row("note", note)
    for warning in backend.warnings:
        grid.add_row(Text("warning", style="yellow"), Text(one_line(warning), style="yellow"))
    return Panel(grid, title=Text("Magneton energy report", style="bold"), title_align="left", box=box.ROUNDED)


def _measurement_context(report: Report, row: Callable[..., None], grid: Table) -> None:
    """Overhead, allocator, page faults and contention: what else shaped the numbers."""
    total = report.total_energy_j or 1.0
    if report.overhead and report.explained_coverage is not None and report.overhead_energy_j is not None:
        top = report.overhead[0]
        place = f" {where(top.source.file, top.source.line)}" if top.source else ""
        row(
            "explained",
            f"{report.explained_coverage:.2f} = operators {report.node_energy_sum_j / total:.2f} + framework "
            f"overhead {report.overhead_energy_j / total:.2f}; most overhead in {top.module_path or '(root)'} "
            f"[{top.module_type}]{place}, {top.share:.0%}",
        )
    if report.allocator:
        row("allocator", report.allocator)
    faults = report.page_faults
    if faults is not None and faults.minor_per_call + faults.major_per_call > 0:
        row(
            "faults",
            f"{faults.minor_per_call:,.0f} minor + {faults.major_per_call:,.0f} major page faults per call, "
            f"~{faults.energy_share:.0%} of its energy (estimated)",
        )
    contention = report.contention
    if contention is not None and contention.windows:
        busy = f", others kept {contention.others_busy_cores:.1f} cores busy" if contention.others_busy_cores else ""
        row(
            "contention",
            f"{contention.contended_windows}/{contention.windows} windows waited for a CPU "
            f"({contention.remeasured_windows} re-measured){busy}",
        )
        _warn(grid, contention.warning)
    drift = report.machine_drift
    if drift is not None and drift.readings_s:
        row(
            "sync drift",
            f"{drift.spread:.0%} across {len(drift.readings_s)} trials (thread-synchronisation reference "
            f"{min(drift.readings_s) * 1e6:.1f}-{max(drift.readings_s) * 1e6:.1f} us per call)",
        )
        _warn(grid, drift.warning)


def _warn(grid: Table, warning: str | None) -> None:
    """A header row in bold yellow, for what makes the numbers less trustworthy."""
    if warning:
        grid.add_row(Text("warning", style="bold yellow"), Text(one_line(warning), style="bold yellow"))


# ------------------------------------------------------------------------------------------------ tables


def _operators_table(report: Report, top: int, layout: Layout) -> Table:
    rows = fold_nodes(report.nodes)[:top]
    table = _table(f"Top {len(rows)} operators by energy (median over trials; ~ noisy)")
    rank_w = len(str(len(rows))) if rows else 1
    op_w = min(layout.op, max([cell_len(one_line(short_op(r.first.op))) for r in rows] + [2]))
    where_w = min(layout.where, max([cell_len(_row_where(r)) for r in rows] + [5]))
    module_w = min(layout.module, max([cell_len(one_line(r.module or "(root)")) for r in rows] + [6]))
    columns: list[tuple[str, int, str]] = [
        ("#", rank_w, "right"),
        ("op", op_w, "left"),
        ("energy", 9, "right"),
        ("share", 6, "right"),
        ("n", 3, "right"),
    ]
    if layout.time:
        columns.append(("time", 8, "right"))
    columns.append(("where", where_w, "left"))
    if layout.module:
        columns.append(("module", module_w, "left"))
    code_w = _fit_last_column([w for _, w, _ in columns], layout)
    columns.append(("code", code_w, "left"))
    for name, width, justify in columns:
        table.add_column(name, width=width, no_wrap=True, overflow="ellipsis", justify=justify)  # type: ignore[arg-type]
    for rank, row in enumerate(rows, 1):
        node = row.first
        cells: list[RenderableType] = [
            str(rank),
            Text(clip(_PHASE_TAG.get(node.phase or "", "") + one_line(short_op(node.op)), op_w)),
            format_energy(row.energy_j) + (" ~" if row.noisy else ""),
            f"{row.share:.1%}",
            f"×{len(row.nodes)}" if len(row.nodes) > 1 else "",
        ]
        if layout.time:
            cells.append(format_time(row.time_s))
        cells.append(Text(clip_left(_row_where(row), where_w)))
        if layout.module:
            cells.append(Text(clip(one_line(row.module or "(root)"), module_w), style="cyan"))
        code = node.source.code if node.source else ""
        cells.append(Text(clip(one_line(code), code_w), style="dim"))
        table.add_row(*cells)
    return table


def _row_where(row: OperatorRow) -> str:
    source = row.first.source
    return where(source.file, source.line) if source else "?"


def _phase_table(report: Report) -> Table:
    """A training step's energy per phase (per-operator sums; the whole step is in the header)."""
    table = _table("By phase")
    for name, justify in (("phase", "left"), ("energy", "right"), ("share", "right"), ("ops", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for phase in report.phases or []:
        table.add_row(phase.phase, format_energy(phase.energy_j), f"{phase.share:.1%}", str(phase.count))
    return table


# A long generation keeps its first and last decoding steps; the steps between fold into one row.
_STEP_HEAD, _STEP_TAIL = 6, 3


def shows_steps(report: Report) -> bool:
    """A workload that calls its model more than once (generate), or wraps one call in glue of its own."""
    if report.steps is None:
        return False
    return report.steps > 1 or any(node.step is None for node in report.nodes)


def _step_table(report: Report) -> Table:
    """Energy per call of the model in one call of the workload: generate's prefill, then each decoding step."""
    steps = report.steps or 0
    energy = [0.0] * (steps + 1)  # index 0: operators outside every call of the model (generate's own glue)
    count = [0] * (steps + 1)
    for node in report.nodes:
        index = node.step if node.step is not None and 0 < node.step <= steps else 0
        energy[index] += node.energy_j
        count[index] += 1
    total = sum(energy) or 1.0
    table = _table("By decoding step (per-operator sums)")
    for name, justify in (("step", "right"), ("kind", "left"), ("energy", "right"), ("share", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("ops", justify="right", no_wrap=True)

    def add(step: str, kind: str, joules: float, ops: int) -> None:
        table.add_row(step, kind, format_energy(joules), f"{joules / total:.1%}", str(ops))

    shown = list(range(1, steps + 1))
    if steps > _STEP_HEAD + _STEP_TAIL + 1:
        shown = [*range(1, _STEP_HEAD + 1), 0, *range(steps - _STEP_TAIL + 1, steps + 1)]
    for step in shown:
        if step == 0:  # the folded middle of a long generation
            first, last = _STEP_HEAD + 1, steps - _STEP_TAIL
            folded = range(first, last + 1)
            joules = sum(energy[k] for k in folded)
            each = format_energy(joules / len(folded))
            add(f"{first}–{last}", f"decode ×{len(folded)}, {each} each", joules, sum(count[k] for k in folded))
            continue
        add(f"{step} of {steps}", "prefill" if step == 1 else "decode", energy[step], count[step])
    if steps > 2:
        table.add_row("", Text("decode, median step", style="dim"), format_energy(median(energy[2:])), "", "")
    if count[0]:
        add("", "outside the model", energy[0], count[0])
    return table


def _line_table(report: Report, top: int, layout: Layout) -> Table:
    groups = report.rollups.by_line[:top]
    training = report.phases is not None
    table = _table(
        "By source line (backward: the operators differentiating the line)" if training else "By source line"
    )
    where_w = min(layout.where + 6, max([cell_len(where(g.file, g.line)) for g in groups] + [5]))
    columns = [("where", where_w, "left"), ("energy", 9, "right"), ("share", 6, "right"), ("ops", 4, "right")]
    if training:
        columns[2:2] = [("forward", 9, "right"), ("backward", 9, "right")]
    code_w = _fit_last_column([w for _, w, _ in columns], layout)
    columns.append(("code", code_w, "left"))
    for name, width, justify in columns:
        table.add_column(name, width=width, no_wrap=True, overflow="ellipsis", justify=justify)  # type: ignore[arg-type]
    for group in groups:
        phases = (
            [format_energy(group.forward_energy_j or 0.0), format_energy(group.backward_energy_j or 0.0)]
            if training
            else []
        )
        table.add_row(
            Text(where(group.file, group.line, where_w)),
            format_energy(group.energy_j),
            *phases,
            f"{group.share:.1%}",
            str(len(group.nodes)),
            Text(clip(one_line(group.code), code_w), style="dim"),
        )
    return table


def _op_table(report: Report, top: int, layout: Layout) -> Table:
    table = _table("By operator type")
    groups = [g for g in report.rollups.by_op if g.energy_j > 0][:top]
    op_w = min(layout.op + 16, max([cell_len(one_line(short_op(g.op))) for g in groups] + [2]))
    table.add_column("op", width=op_w, no_wrap=True, overflow="ellipsis")
    for name in ("count", "energy", "share"):
        table.add_column(name, justify="right", no_wrap=True)
    for group in groups:
        table.add_row(
            Text(clip(one_line(short_op(group.op)), op_w)),
            str(group.count),
            format_energy(group.energy_j),
            f"{group.share:.1%}",
        )
    return table


# ------------------------------------------------------------------------------------------------ footer


def provenance_sentence(report: Report) -> Text:
    """'All energies ...': read from the report's provenance, never assumed."""
    provenance = report.energy_provenance
    text = Text()
    if provenance.kind == "measured":
        text.append(f"All energies MEASURED by {one_line(provenance.sensor or '?')}.", style="bold green")
    elif provenance.kind == "estimated":
        text.append("All energies are ESTIMATED", style="bold yellow")
        text.append(f" ({one_line(provenance.formula or 'unknown formula')}), not measured by a sensor.")
    elif provenance.kind == "replayed":
        text.append("All energies are REPLAYED", style="bold yellow")
        original = provenance.original.describe() if provenance.original else "of unknown origin"
        text.append(f" from {one_line(provenance.trace_path or '?')}; the trace says: {one_line(original)}.")
        if provenance.recorded_by_magneton is False:
            text.append(" Magneton did not record this trace, so that is only its claim.", style="yellow")
    else:
        text.append(f"All energies are {provenance.kind.upper()}: {one_line(provenance.describe())}.")
    return text


def _footer(report: Report) -> Text:
    noisy = sum(1 for node in report.nodes if node.noisy)
    text = Text()
    if noisy:
        threshold = report.noisy_relative_spread
        limit = f"±{threshold:.0%} of the median" if threshold is not None else "the report's noisy threshold"
        text.append(f"~ marks {noisy} noisy operators (confidence interval wider than {limit}).\n", style="yellow")
    text.append(provenance_sentence(report))
    findings = report.findings
    text.append(f"\n{len(findings)} findings." if findings else "\nNo findings.")
    return text


def summary_line(report: Report) -> Text:
    """One line per report for ``--quiet``: the total, the backend, and what kind of number it is."""
    target = report.target if report.target is not None else " vs ".join(report.targets or [])
    text = Text(one_line(f"{target}: {format_energy(report.total_energy_j)} per call, backend {report.backend.name}, "))
    text.append(_provenance_text(report))
    provenance = report.energy_provenance
    if provenance.kind == "replayed" and provenance.original is not None:
        text.append(f" (trace says {provenance.original.kind})")
    if report.backend.warnings:
        text.append(one_line(f"; {report.backend.reason}"), style="yellow")
    return text


def findings_text(findings: Sequence[Finding]) -> Text:
    from magneton.report.findings_terminal import findings_text as render

    return render(findings)


def render_report(report: Report, console: Console, top: int = 15) -> None:
    layout = Layout.for_width(console.width)
    parts: list[RenderableType] = [_header(report), _operators_table(report, top, layout)]
    if shows_steps(report):
        parts.append(_step_table(report))
    if report.phases is not None:
        parts.append(_phase_table(report))
    if report.rollups.by_line:  # no table at all when no operator has a source (e.g. all inside torch)
        parts.append(_line_table(report, min(top, 10), layout))
    parts.append(_op_table(report, min(top, 10), layout))
    if report.findings:
        parts.append(findings_text(report.findings))
    parts.append(_footer(report))
    console.print(Group(*parts), soft_wrap=False)


__all__ = [
    "fold_nodes",
    "fold_paths",
    "findings_text",
    "format_energy",
    "format_time",
    "one_line",
    "provenance_sentence",
    "render_report",
    "short_op",
    "short_path",
    "summary_line",
]
