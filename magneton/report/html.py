"""The self-contained HTML report: one file that opens from ``file://`` with no network.

Plotting approach: hand-written SVG, no plotting library. The views are few and
fixed (an icicle of the energy hierarchy, a waterfall of diff regions, bars), so
~400 lines of plain JavaScript and SVG do them; a general library would add
0.5–3 MB to every report, a licence to ship inside each file, and a build step
for what would still need custom code for the icicle's zoom and the folding of
repeated layers. Static parts (header, findings, diff regions, training phases)
are rendered here in Python, where every piece of user text goes through
``html.escape``; the interactive parts (icicle, operator table) are drawn by
``assets/report.js`` from a JSON island that only ever reaches the DOM through
``textContent``.

The renderer reads the ``magneton.report/1`` JSON contract (DESIGN.md) as a
mapping, so it accepts the report dict, a decoded JSON file or the typed model
(converted with ``msgspec.to_builtins``), and shows whatever optional parts a
report holds: findings, diff ``regions``, node ``flops``/``bytes``/``phase``,
contention. Absent parts are left out, never shown empty or invented.
"""

from __future__ import annotations

import html
import json
import linecache
import math
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from magneton.errors import MagnetonError
from magneton.report import units
from magneton.report.units import short_path

VERDICTS = ("waste", "tradeoff", "same")
PHASES = ("forward", "backward", "optimizer")
SOURCE_CONTEXT_LINES = 2  # lines shown above and below a finding's line when the file is readable here


class ReportFormatError(MagnetonError):
    """A report cannot be rendered: it is not a magneton.report/1 mapping."""


# ---------------------------------------------------------------- formatting


def format_energy(joules: float | None) -> str:
    """Joules with an SI prefix and three significant digits; "n/a" for a missing or non-finite value."""
    return "n/a" if joules is None or not math.isfinite(joules) else units.format_energy(joules)


def format_time(seconds: float | None) -> str:
    return "n/a" if seconds is None or not math.isfinite(seconds) else units.format_time(seconds)


def format_share(share: float | None) -> str:
    return "n/a" if share is None or not math.isfinite(share) else f"{100 * share:.1f}%"


def _format_value(key: str, value: Any) -> str:
    """A detail value by its unit suffix (DESIGN.md: every number says its unit)."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "n/a"
    if isinstance(value, (int, float)):
        if key.endswith("_j"):
            return format_energy(float(value))
        if key.endswith("_s"):
            return format_time(float(value))
        if key.endswith("_w"):
            return f"{value:.3g} W"
        if key == "share" or key.endswith("_share"):
            return format_share(float(value))
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    if isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, (int, float)) for v in value):
        return " – ".join(_format_value(key, v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_format_value(str(k), v)}" for k, v in value.items())
    return str(value)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------- safe JSON inside <script>


def _finite_json(value: Any) -> Any:
    """NaN and infinities are not JSON: the browser's JSON.parse would reject the whole island."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``.

    Escaping ``<`` covers ``</script>`` and ``<!--`` (which would end the element or switch the tokenizer
    into a state where ``</script>`` no longer closes it); U+2028/2029 are escaped for older JS parsers.
    JSON.parse turns every escape back into the original character.
    """
    text = json.dumps(_finite_json(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_UNSAFE[m.group(0)], text)


# ---------------------------------------------------------------- the data the browser draws from


def _tensor_text(meta: Mapping[str, Any]) -> str:
    shape = ",".join(str(d) for d in meta.get("shape", []))
    text = f"{meta.get('dtype', '?')}[{shape}]"
    if meta.get("contiguous") is False and meta.get("stride"):
        text += "{stride " + ",".join(str(s) for s in meta["stride"]) + "}"
    return text


def _node_view(node: Mapping[str, Any], source_index: dict[tuple[str, int], int]) -> dict[str, Any]:
    source = node.get("source")
    src = -1
    if source:
        src = source_index[(source["file"], int(source["line"]))]
    view: dict[str, Any] = {
        "id": node["id"],
        "op": node["op"],
        "e": node.get("energy_j", 0.0),
        "t": node.get("time_s", 0.0),
        "m": node.get("module_path", "") or "",
        "mt": node.get("module_type", "") or "",
        "s": src,
        "in": "; ".join(_tensor_text(m) for m in node.get("inputs", [])),
        "out": "; ".join(_tensor_text(m) for m in node.get("outputs", [])),
    }
    optional = {
        "x": node.get("expected_energy_j"),
        "ci": node.get("energy_ci_j"),
        "fl": node.get("flops") or None,  # 0: not counted (views, ops without a formula)
        "by": node.get("bytes") or None,
        "ph": node.get("phase"),
        "z": node.get("zero_cost_reason"),
        "noisy": node.get("noisy") or None,
        "contended": node.get("contended") or None,
        "as": node.get("measured_as") if node.get("measured_as") not in (None, node["id"]) else None,
    }
    view.update({k: v for k, v in optional.items() if v is not None})
    return view


def chart_data(report: Mapping[str, Any]) -> dict[str, Any]:
    """The compact form of the nodes that report.js draws: sources listed once, tensors as short text."""
    nodes = list(report.get("nodes") or [])
    sources: list[list[Any]] = []
    source_index: dict[tuple[str, int], int] = {}
    for node in nodes:
        source = node.get("source")
        if source:
            key = (source["file"], int(source["line"]))
            if key not in source_index:
                source_index[key] = len(sources)
                sources.append(
                    [short_path(source["file"]), source["line"], source.get("function", ""), source.get("code", "")]
                )
    backend = report.get("backend") or {}
    return {
        "provenance": _provenance_kind(report.get("energy_provenance") or backend.get("provenance")),
        "total_energy_j": report.get("total_energy_j"),
        "has_expected": any(node.get("expected_energy_j") is not None for node in nodes),
        "sources": sources,
        "nodes": [_node_view(node, source_index) for node in nodes],
    }


# ---------------------------------------------------------------- sections rendered here


def _row(label: str, value_html: str, row_id: str | None = None) -> str:
    attr = f' id="{row_id}"' if row_id else ""
    return f"<tr{attr}><th>{_e(label)}</th><td>{value_html}</td></tr>"


def _interval(values: Any) -> str:
    if isinstance(values, Sequence) and len(values) == 2:
        return f"{format_energy(values[0])} – {format_energy(values[1])}"
    return ""


def describe_provenance(provenance: Any) -> str:
    """One phrase for an energy's provenance, from its JSON form (a kind string or an object with ``kind``)."""
    if not isinstance(provenance, Mapping):
        return str(provenance or "unknown")
    kind = str(provenance.get("kind", "unknown"))
    if kind == "measured":
        return f"measured by {provenance.get('sensor') or 'a sensor'}"
    if kind == "estimated":
        return f"estimated: {provenance.get('formula') or 'a model'}"
    if kind == "predicted":
        error = provenance.get("held_out_error")
        metric = provenance.get("held_out_metric") or "error"
        held_out = f", held-out {metric} {error:.3g}" if isinstance(error, (int, float)) else ""
        size = provenance.get("training_set_size")
        trained = f"trained on {size} samples" if size is not None else "training set unknown"
        return f"predicted by {provenance.get('model') or 'a model'} ({trained}{held_out})"
    if kind == "replayed":
        original = describe_provenance(provenance.get("original")) if provenance.get("original") else "unknown"
        claim = " — not recorded by Magneton: a claim" if provenance.get("recorded_by_magneton") is False else ""
        return f"replayed from {provenance.get('trace_path') or 'a trace'} (originally {original}){claim}"
    return kind


def _provenance_kind(provenance: Any) -> str:
    return str(provenance.get("kind", "unknown")) if isinstance(provenance, Mapping) else str(provenance or "unknown")


def _provenance_badge(provenance: str) -> str:
    cls = {"measured": "measured", "estimated": "estimated", "replayed": "replayed", "predicted": "predicted"}
    return f'<span class="badge prov-{cls.get(provenance, "unknown")}">{_e(provenance.upper())}</span>'


def _drift_html(drift: Any) -> str:
    """The machine-drift warning; nothing when the machine held still or was not checked."""
    if not isinstance(drift, Mapping) or not drift.get("warning"):
        return ""
    return f'<div class="warning" id="drift-warning"><b>Machine drift:</b> {_e(drift["warning"])}</div>'


def _contention_html(contention: Any) -> str:
    if not contention:
        return ""
    if isinstance(contention, Mapping):
        warning = contention.get("warning")
        details = ", ".join(f"{_e(k)}: {_e(_format_value(str(k), v))}" for k, v in contention.items() if k != "warning")
        if warning:
            return f'<div class="warning" id="contention-warning"><b>Contention:</b> {_e(warning)}<br>{details}</div>'
        return f'<p class="note" id="contention">contention: {details}</p>'
    return f'<div class="warning" id="contention-warning"><b>Contention:</b> {_e(contention)}</div>'


def _header_side(report: Mapping[str, Any]) -> str:
    """Totals of one program: energy with its interval, time, active energy, coverage."""
    rows = []
    ci = report.get("total_energy_ci_j")
    confidence = report.get("total_energy_ci_confidence") or report.get("ci_confidence")
    ci_label = f"{100 * confidence:.0f}% CI over trials" if isinstance(confidence, (int, float)) else "over trials"
    energy = f'<span class="big">{_e(format_energy(report.get("total_energy_j")))}</span>'
    if ci:
        energy += f" <span class='dim'>({_e(ci_label)}: {_e(_interval(ci))})</span>"
    rows.append(_row(f"energy ({report.get('energy_scope', 'per call')})", energy, "total-energy"))
    rows.append(_row("time", _e(format_time(report.get("total_time_s")))))
    if report.get("active_energy_j") is not None:
        idle = report.get("idle_power_w")
        idle_text = f" (idle power {idle:.3g} W)" if isinstance(idle, (int, float)) else ""
        rows.append(_row("above idle", _e(format_energy(report["active_energy_j"]) + idle_text)))
    coverage = report.get("coverage")
    if "coverage" in report:
        ok = isinstance(coverage, (int, float)) and 0.8 <= coverage <= 1.25
        text = f"{coverage:.2f}" if isinstance(coverage, (int, float)) else "n/a"
        note = "per-operator sum / whole run" + ("" if ok else " — outside 0.8–1.25: energy outside measured operators")
        value = f'<span class="{"ok" if ok else "bad"}">{_e(text)}</span> <span class="dim">{_e(note)}</span>'
        rows.append(_row("coverage", value))
    explained = report.get("explained_coverage")
    if isinstance(explained, (int, float)):
        overhead = report.get("overhead_energy_j")
        detail = f" (operators + {format_energy(overhead)} framework overhead) / whole run" if overhead else ""
        rows.append(_row("explained energy", _e(f"{explained:.2f}{detail}"), "explained"))
    if report.get("steps"):
        rows.append(_row("model calls", _e(f"{report['steps']} per call of the workload")))
    return "".join(rows)


def render_header(report: Mapping[str, Any]) -> str:
    backend = report.get("backend") or {}
    # The totals' own provenance (typed reports) says more than the backend's: "replayed", with the original.
    provenance = _provenance_kind(report.get("energy_provenance") or backend.get("provenance"))
    targets = report.get("targets")
    title = " vs ".join(str(t) for t in targets) if targets else str(report.get("target", "?"))
    rows = []
    if targets:
        for label, target in zip(("A", "B"), targets, strict=False):
            rows.append(_row(f"target {label}", f"<code>{_e(target)}</code>"))
    else:
        rows.append(_row("target", f"<code>{_e(title)}</code>", "target"))
    device = str(report.get("device", "?"))
    extras = [str(report[k]) for k in ("device_description",) if report.get(k)]
    if report.get("threads"):
        extras.append(f"{report['threads']} threads")
    if report.get("torch_version"):
        extras.append(f"torch {report['torch_version']}")
    rows.append(_row("device", _e(device + (" — " + ", ".join(extras) if extras else ""))))
    backend_html = f"{_e(backend.get('name', '?'))} {_provenance_badge(provenance)} — {_e(backend.get('sensor', ''))}"
    rows.append(_row("backend", backend_html, "backend"))
    # The backend row already says measured or estimated; a replayed report says more about its joules here.
    if isinstance(report.get("energy_provenance"), Mapping) and provenance != backend.get("provenance"):
        rows.append(_row("energies", _e(describe_provenance(report["energy_provenance"])), "provenance"))
    expected = next((n["expected_provenance"] for n in report.get("nodes") or [] if n.get("expected_provenance")), None)
    if expected:
        rows.append(_row("expected energy", _e(describe_provenance(expected))))
    elif isinstance(report.get("expected"), Mapping) and report["expected"].get("enabled") is False:
        why_not = "; ".join(map(str, report["expected"].get("notes") or [])) or "not run"
        rows.append(_row("expected energy", _e(f"not predicted: {why_not}")))
    if backend.get("formula"):
        constants = ", ".join(f"{k}={v}" for k, v in (backend.get("constants") or {}).items())
        formula = f"<code>{_e(backend['formula'])}</code> <span class='dim'>[{_e(constants)}]</span>"
        rows.append(_row("formula", formula))
    if backend.get("reason"):
        rows.append(_row("why", _e(backend["reason"])))
    diff: Mapping[str, Any] = report["diff"] if isinstance(report.get("diff"), Mapping) else {}
    side_totals = [
        side
        for side in (report.get("sides") or diff.get("sides") or [])
        if isinstance(side, Mapping) and side.get("total_energy_j") is not None
    ]
    if not targets or not side_totals:
        rows.append(_header_side(report))
    for label, side in zip(("A", "B"), side_totals, strict=False):
        ci = f" ({_interval(side['total_energy_ci_j'])})" if side.get("total_energy_ci_j") else ""
        rows.append(_row(f"energy {label}", _e(format_energy(side["total_energy_j"]) + ci), f"energy-{label}"))
    capture = report.get("capture") or {}
    if capture.get("method"):
        rows.append(_row("capture", _e(capture["method"])))
    warnings = [*backend.get("warnings", []), *report.get("warnings", [])]
    notes = [*capture.get("notes", []), *report.get("measurement_notes", [])]
    totals = report.get("energy_provenance")
    original = totals.get("original") if isinstance(totals, Mapping) else None
    estimated = provenance == "estimated" or _provenance_kind(original) == "estimated"
    banner = (
        '<div class="warning" id="estimate-warning">Energies in this report are <b>ESTIMATED</b> '
        f"({_e(backend.get('sensor', 'a model'))}), not measured by a sensor.</div>"
        if estimated
        else ""
    )
    return (
        f'<header id="header"><h1>Magneton energy report <span class="dim">·</span> <code>{_e(title)}</code></h1>'
        f"{banner}{_contention_html(report.get('contention'))}{_drift_html(report.get('machine_drift'))}"
        + "".join(f'<div class="warning">{_e(w)}</div>' for w in warnings)
        + f'<table class="kv">{"".join(rows)}</table>'
        + (
            '<details class="notes"><summary>notes</summary><ul>'
            + "".join(f"<li>{_e(n)}</li>" for n in notes)
            + "</ul></details>"
            if notes
            else ""
        )
        + "</header>"
    )


def _source_block(source: Mapping[str, Any] | None) -> str:
    """The finding's line with a little context when the file is readable here, else the stored code."""
    if not source:
        return ""
    file, line = str(source.get("file", "")), int(source.get("line", 0) or 0)
    end_line = int(source.get("end_line") or line)
    where = f"{short_path(file)}:{line}" + (f" in {source['function']}" if source.get("function") else "")
    lines: list[str] = []
    if file and line > 0 and os.path.isfile(file):
        for number in range(max(1, line - SOURCE_CONTEXT_LINES), end_line + SOURCE_CONTEXT_LINES + 1):
            text = linecache.getline(file, number)
            if not text and number > end_line:
                break
            cls = "hl" if line <= number <= end_line else ""
            lines.append(f'<span class="ln {cls}"><i>{number:>5}</i> {_e(text.rstrip())}</span>')
    if not lines:
        code = source.get("expression") or source.get("code") or ""
        lines = [f'<span class="ln hl"><i>{line:>5}</i> {_e(str(code).rstrip())}</span>'] if code else []
    code_html = f'<pre class="code">{"".join(lines)}</pre>' if lines else ""
    return f'<div class="where"><code>{_e(where)}</code></div>{code_html}'


def _fix_block(fix: str | None) -> str:
    if not fix:
        return ""
    out = []
    for text in fix.split("\n"):  # not splitlines(): U+2028 inside a line of code is not a line break
        kind = "file" if text.startswith(("+++", "---")) else text[:1]
        cls = {"file": "file", "+": "add", "-": "del", "@": "hunk"}.get(kind, "")
        out.append(f'<span class="{cls}">{_e(text)}</span>')
    return f'<details open><summary>suggested fix</summary><pre class="diff">{"".join(out)}</pre></details>'


def _verification(finding: Mapping[str, Any]) -> str:
    details = finding.get("details") or {}
    verified = finding.get("verification") or details.get("verification") or details.get("verified")
    if not isinstance(verified, Mapping):
        return ""
    items = "".join(f"<li>{_e(k)}: {_e(_format_value(str(k), v))}</li>" for k, v in verified.items())
    return f'<div class="verified"><b>verified by measurement</b><ul>{items}</ul></div>'


def render_findings(report: Mapping[str, Any]) -> str:
    findings = list(report.get("findings") or [])
    total = report.get("total_energy_j")
    if not findings:
        return (
            '<section id="findings"><h2>Findings</h2><p class="none" id="no-findings">No findings: no rule, anomaly '
            "or diff detector flagged waste in this report.</p></section>"
        )
    # The same finding in every repeated layer (one rule, one source line) is one card with its total.
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for finding in findings:
        source = finding.get("source") or {}
        key = (finding.get("kind"), finding.get("rule"), finding.get("title"), source.get("file"), source.get("line"))
        groups.setdefault(key, []).append(finding)
    cards = []
    for index, group in enumerate(groups.values()):
        finding = group[0]
        kind = str(finding.get("kind", "?"))
        rule = finding.get("rule")
        category = finding.get("category")
        tags = f'<span class="badge kind-{_e(kind)}">{_e(kind)}</span>'
        if rule:
            tags += f' <span class="badge rule">{_e(rule)}</span>'
        if category:
            tags += f' <span class="badge cat">{_e(category)}</span>'
        if finding.get("potential"):
            tags += ' <span class="badge potential">potential (never ran)</span>'
        if len(group) > 1:
            tags += f' <span class="badge repeat">×{len(group)} (repeated layers)</span>'
        excess = sum(float(f.get("excess_energy_j") or 0.0) for f in group)
        held = sum(float(f.get("energy_j") or 0.0) for f in group)
        shares = [f.get("share") for f in group]
        numeric = [float(v) for v in shares if isinstance(v, (int, float))]
        share_text = format_share(sum(numeric)) if len(numeric) == len(shares) else "n/a"
        energy_line = (
            f'<div class="energy"><b>excess {_e(format_energy(excess))}</b> ({_e(share_text)} of '
            f"{_e(format_energy(total))}) <span class='dim'>[{_e(finding.get('excess_provenance', '?'))}]</span> · "
            f"held by its operators {_e(format_energy(held))} "
            f"<span class='dim'>[{_e(finding.get('energy_provenance', '?'))}]</span></div>"
        )
        parts = [
            f'<article class="finding" id="finding-{index}" data-count="{len(group)}">'
            f"<h3>{tags} {_e(finding.get('title', ''))}</h3>",
            energy_line,
            _source_block(finding.get("source")),
        ]
        for label, field in (("counterpart on side B", "peer_source"), ("called from your code", "call_site")):
            if finding.get(field):
                parts.append(f'<div class="sub">{_e(label)}</div>{_source_block(finding[field])}')
        if finding.get("explanation"):
            parts.append(f'<p class="explanation">{_e(finding["explanation"])}</p>')
        if finding.get("suggestion"):
            parts.append(f'<p class="suggestion"><b>suggestion:</b> {_e(finding["suggestion"])}</p>')
        parts.append(_fix_block(finding.get("fix")))
        parts.append(_verification(finding))
        nodes = [node for f in group for node in f.get("nodes") or []]
        if nodes:
            shown = ", ".join(str(n) for n in nodes[:12]) + (f", … ({len(nodes)} in all)" if len(nodes) > 12 else "")
            parts.append(f'<div class="dim nodes">operators: {_e(shown)}</div>')
        parts.append("</article>")
        cards.append("".join(parts))
    return (
        f'<section id="findings"><h2>Findings <span class="count">{len(findings)}</span></h2>'
        f'<div id="findings-list">{"".join(cards)}</div></section>'
    )


# ---------------------------------------------------------------- diff view


def _side_nodes(report: Mapping[str, Any], index: int) -> dict[str, Mapping[str, Any]]:
    """Nodes of side A (0) or B (1) of a diff, wherever the diff report keeps them."""
    candidates: list[Any] = []
    for key in ("sides", "reports"):
        sides = report.get(key)
        if isinstance(sides, Sequence) and len(sides) > index:
            candidates.append(sides[index])
    candidates.append(report.get("ab"[index]))
    candidates.append(report)  # a diff that lists both sides' nodes (distinct ids) at the top level
    for side in candidates:
        if isinstance(side, Mapping) and side.get("nodes"):
            return {str(node["id"]): node for node in side["nodes"]}
    return {}


def _region_side(
    node_ids: Sequence[str], nodes: Mapping[str, Mapping[str, Any]], split: Sequence[Mapping[str, Any]] = ()
) -> str:
    """A region's operators and source lines on one side: from its per-operator split when the diff gives one
    (each operator with its energy), else from the side's nodes."""
    entries: list[Mapping[str, Any]] = list(split) or [
        nodes.get(str(node_id)) or {"op": str(node_id)} for node_id in node_ids
    ]
    if not entries:
        return '<span class="dim">no operators</span>'
    ops: dict[str, list[float]] = {}
    lines: dict[str, str] = {}
    for entry in entries:
        ops.setdefault(str(entry.get("op", "?")), []).append(float(entry.get("energy_j") or 0.0))
        source = entry.get("source")
        if source:
            where = f"{short_path(source['file'])}:{source['line']}"
            lines.setdefault(where, str(source.get("code", "")))
    items = []
    for op, energies in ops.items():
        text = f"{op} ×{len(energies)}" if len(energies) > 1 else op
        if split and sum(energies) > 0:
            text += f" {format_energy(sum(energies))}"
        items.append(text)
    line_html = "".join(f"<li><code>{_e(w)}</code> {_e(code)}</li>" for w, code in lines.items())
    return f'<div class="ops">{_e(", ".join(items))}</div>' + (
        f'<ul class="lines">{line_html}</ul>' if line_html else ""
    )


def _diff_summary(report: Mapping[str, Any]) -> str:
    """Both programs' totals, the settings that differ and the operators left unmatched (``diff`` block)."""
    summary = report.get("diff")
    if not isinstance(summary, Mapping):
        return ""
    rows = []
    for side in summary.get("sides") or []:
        ci = f" ({_interval(side['total_energy_ci_j'])})" if side.get("total_energy_ci_j") else ""
        matched = side.get("matched_share")
        matched_text = (
            f", {format_share(matched)} of {side.get('ops', '?')} operators in matched regions"
            if (isinstance(matched, (int, float)))
            else ""
        )
        coverage = side.get("region_coverage")
        coverage_text = f", regions cover {coverage:.2f} of it" if isinstance(coverage, (int, float)) else ""
        rows.append(
            _row(
                f"side {side.get('label', '?')}",
                f"<code>{_e(side.get('target', '?'))}</code> — "
                + _e(f"{format_energy(side.get('total_energy_j'))}{ci}, {format_time(side.get('total_time_s'))}")
                + _e(coverage_text + matched_text),
            )
        )
    if summary.get("threshold") is not None:
        rows.append(_row("waste threshold", _e(format_share(summary["threshold"]))))
    differences = summary.get("setting_differences") or []
    if differences:
        items = "".join(
            f"<li><code>{_e(d.get('name'))}</code>: A {_e(d.get('a'))}, B {_e(d.get('b'))}</li>" for d in differences
        )
        rows.append(_row("settings that differ", f"<ul>{items}</ul>"))
    if summary.get("outputs_largest_relative_difference") is not None:
        where = f" at {summary['outputs_where']}" if summary.get("outputs_where") else ""
        rows.append(
            _row(
                "outputs",
                _e(f"largest relative difference {summary['outputs_largest_relative_difference']:.3g}{where}"),
            )
        )
    unmatched = summary.get("unmatched") or []
    if unmatched:
        items = "".join(
            f"<li>A: {_e(', '.join(u.get('a_ops') or []) or '—')} ({_e(format_energy(u.get('a_energy_j')))}) · "
            f"B: {_e(', '.join(u.get('b_ops') or []) or '—')} ({_e(format_energy(u.get('b_energy_j')))})</li>"
            for u in unmatched
        )
        rows.append(_row("unmatched operators", f'<ul id="unmatched">{items}</ul>'))
    return f'<table class="kv" id="diff-summary">{"".join(rows)}</table>'


def _waterfall_svg(regions: Sequence[Mapping[str, Any]]) -> str:
    """Cumulative excess energy (A − B) region by region: where side A's extra joules come from."""
    steps = [(i, float(r.get("a_energy_j", 0.0)) - float(r.get("b_energy_j", 0.0))) for i, r in enumerate(regions)]
    if not steps:
        return ""
    width, bar_h, gap, left = 760, 16, 4, 90
    running, low, high = 0.0, 0.0, 0.0
    spans = []
    for index, delta in steps:
        start, running = running, running + delta
        spans.append((index, start, running, delta))
        low, high = min(low, running), max(high, running)
    scale = (width - left - 110) / ((high - low) or 1.0)

    def x(value: float) -> float:
        return left + (value - low) * scale

    parts = [
        f'<svg id="waterfall" class="waterfall" width="{width}" height="{(len(spans) + 1) * (bar_h + gap) + 10}" '
        'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="excess energy per region">',
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="0" y2="{(len(spans) + 1) * (bar_h + gap)}" class="axis"/>',
    ]
    for row, (index, start, end, delta) in enumerate(spans):
        verdict = str(regions[index].get("verdict", "same"))
        y = row * (bar_h + gap)
        x0, x1 = sorted((x(start), x(end)))
        parts.append(
            f'<g class="wf-step verdict-{_e(verdict)}"><text x="{left - 6}" y="{y + bar_h - 4}" text-anchor="end">'
            f"region {index}</text>"
            f'<rect x="{x0:.1f}" y="{y}" width="{max(1.0, x1 - x0):.1f}" height="{bar_h}"><title>region {index}: '
            f"{_e(verdict)}, A − B = {_e(format_energy(delta))}</title></rect>"
            f'<text x="{max(x0, x1) + 4:.1f}" y="{y + bar_h - 4}">{_e(format_energy(delta))}</text></g>'
        )
    y = len(spans) * (bar_h + gap)
    parts.append(
        f'<g class="wf-total"><text x="{left - 6}" y="{y + bar_h - 4}" text-anchor="end">total</text>'
        f'<rect x="{min(x(0), x(running)):.1f}" y="{y}" width="{max(1.0, abs(x(running) - x(0))):.1f}" '
        f'height="{bar_h}"/><text x="{max(x(0), x(running)) + 4:.1f}" y="{y + bar_h - 4}">'
        f"{_e(format_energy(running))}</text></g></svg>"
    )
    return "".join(parts)


def render_diff(report: Mapping[str, Any]) -> str:
    regions = list(report.get("regions") or [])
    if not regions:
        return ""
    targets = list(report.get("targets") or ["A", "B"])
    side_a, side_b = _side_nodes(report, 0), _side_nodes(report, 1)
    counts = {v: sum(1 for r in regions if r.get("verdict") == v) for v in VERDICTS}
    summary = ", ".join(f'<span class="verdict-{v}">{counts[v]} {v}</span>' for v in VERDICTS)
    rows = []
    for index, region in enumerate(regions):
        verdict = str(region.get("verdict", "same"))
        a_j, b_j = region.get("a_energy_j"), region.get("b_energy_j")
        ratio = region.get("ratio")
        ratio_text = f"{ratio:.2f}×" if isinstance(ratio, (int, float)) and math.isfinite(ratio) else "n/a"
        intervals = "".join(
            f"<div class='dim'>{side}: {_e(_interval(region[key]))}</div>"
            for side, key in (("A", "a_energy_ci_j"), ("B", "b_energy_ci_j"))
            if region.get(key)
        )
        ratio_ci = region.get("ratio_ci")
        if isinstance(ratio_ci, Sequence) and len(ratio_ci) == 2:
            intervals += f"<div class='dim'>ratio CI {ratio_ci[0]:.2f}–{ratio_ci[1]:.2f}×</div>"
        if region.get("a_time_s") is not None and region.get("b_time_s") is not None:
            times = f"time A {format_time(region['a_time_s'])} / B {format_time(region['b_time_s'])}"
            intervals += f"<div class='dim'>{_e(times)}</div>"
        if region.get("reason"):
            intervals += f"<div class='reason'>{_e(region['reason'])}</div>"
        if isinstance(region.get("knobs"), Mapping):
            knobs = ", ".join(f"{k}={_format_value(str(k), v)}" for k, v in region["knobs"].items())
            intervals += f"<div class='dim'>knobs: {_e(knobs)}</div>"
        label = region.get("id", index)
        part = " (constants)" if region.get("part") == "constants" else ""
        rows.append(
            f'<tr class="region verdict-{_e(verdict)}" id="region-{index}"><td>{_e(label)}{_e(part)}</td>'
            f"<td>{_region_side(region.get('a_nodes') or [], side_a, region.get('a_split') or ())}</td>"
            f'<td class="num">{_e(format_energy(a_j))}</td>'
            f'<td class="verdict"><span class="badge verdict-{_e(verdict)}">{_e(verdict)}</span>'
            f"<div>A/B {_e(ratio_text)}</div>{intervals}</td>"
            f'<td class="num">{_e(format_energy(b_j))}</td>'
            f"<td>{_region_side(region.get('b_nodes') or [], side_b, region.get('b_split') or ())}</td></tr>"
        )
    return (
        f'<section id="diff"><h2>Diff: regions side by side</h2><p>{summary} — A = <code>{_e(targets[0])}</code>, '
        f"B = <code>{_e(targets[-1])}</code>. Waste: A spends clearly more with no loss of speed or accuracy; "
        "trade-off: the cheaper side is slower or less accurate; same: within the threshold.</p>"
        f"{_diff_summary(report)}<h3>Excess energy per region (A − B, cumulative)</h3>{_waterfall_svg(regions)}"
        '<table class="regions" id="regions-table"><thead><tr><th>#</th><th>side A operators and lines</th>'
        "<th>A energy</th><th>verdict</th><th>B energy</th><th>side B operators and lines</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


# ---------------------------------------------------------------- framework overhead


def render_overhead(report: Mapping[str, Any], rows_shown: int = 15) -> str:
    """Energy spent in modules outside their operators (Python glue, dispatch), most first."""
    rows = [row for row in report.get("overhead") or [] if isinstance(row, Mapping)]
    if not rows:
        return ""
    body = []
    for row in rows[:rows_shown]:
        source = row.get("source")
        where = f"{short_path(source['file'])}:{source['line']}" if source else ""
        body.append(
            f"<tr><td><code>{_e(row.get('module_path') or '(root)')}</code> {_e(row.get('module_type', ''))}</td>"
            f"<td><code>{_e(where)}</code></td><td class='num'>{_e(row.get('calls', ''))}</td>"
            f"<td class='num'>{_e(format_energy(row.get('overhead_energy_j')))}</td>"
            f"<td class='num'>{_e(format_share(row.get('share')))}</td>"
            f"<td class='num'>{_e(format_energy(row.get('whole_energy_j')))}</td></tr>"
        )
    more = (
        f"<p class='dim'>… {len(rows) - rows_shown} more modules in the JSON report</p>"
        if len(rows) > rows_shown
        else ""
    )
    return (
        '<section id="overhead"><h2>Framework overhead by module</h2><p class="dim">Each module\'s whole forward '
        "replayed on its recorded inputs, minus its child modules and its own operators: Python and dispatch "
        "between operators. Negative when its parts cost more replayed alone than in place.</p>"
        '<table class="ops" id="overhead-table"><thead><tr><th>module</th><th>forward defined at</th>'
        '<th class="num">calls</th><th class="num">overhead</th><th class="num">share</th>'
        f'<th class="num">whole module</th></tr></thead><tbody>{"".join(body)}</tbody></table>{more}</section>'
    )


# ---------------------------------------------------------------- training view


def render_training(report: Mapping[str, Any]) -> str:
    nodes = [n for n in report.get("nodes") or [] if n.get("phase")]
    if not nodes:
        return ""
    phases = [p for p in PHASES if any(n["phase"] == p for n in nodes)]
    phases += sorted({str(n["phase"]) for n in nodes} - set(phases))
    totals = {p: sum(float(n.get("energy_j", 0.0)) for n in nodes if n["phase"] == p) for p in phases}
    by_line: dict[str, dict[str, Any]] = {}
    for node in nodes:
        source = node.get("source")
        where = f"{short_path(source['file'])}:{source['line']}" if source else "(no source line)"
        entry = by_line.setdefault(where, {"code": source.get("code", "") if source else "", "phases": {}})
        entry["phases"][node["phase"]] = entry["phases"].get(node["phase"], 0.0) + float(node.get("energy_j", 0.0))
    ordered = sorted(by_line.items(), key=lambda item: -sum(item[1]["phases"].values()))
    peak = max((sum(e["phases"].values()) for _, e in ordered), default=0.0) or 1.0
    head = "".join(f'<th class="num phase-{_e(p)}">{_e(p)}</th>' for p in phases)
    rows = []
    for where, entry in ordered:
        cells = "".join(f'<td class="num">{_e(format_energy(entry["phases"].get(p, 0.0)))}</td>' for p in phases)
        bar = "".join(
            f'<span class="seg phase-{_e(p)}" style="width:{100 * entry["phases"].get(p, 0.0) / peak:.2f}%"></span>'
            for p in phases
        )
        rows.append(
            f"<tr><td><code>{_e(where)}</code><div class='dim'>{_e(entry['code'])}</div></td>{cells}"
            f'<td class="barcell"><div class="stack">{bar}</div></td></tr>'
        )
    total_cells = "".join(f'<td class="num"><b>{_e(format_energy(totals[p]))}</b></td>' for p in phases)
    return (
        '<section id="training"><h2>Training: energy per phase and source line</h2>'
        f'<table class="phases" id="phase-table"><thead><tr><th>source line</th>{head}<th></th></tr></thead>'
        f"<tbody><tr><td><b>all lines</b></td>{total_cells}<td></td></tr>{''.join(rows)}</tbody></table></section>"
    )


# ---------------------------------------------------------------- the page


def _asset(name: str) -> str:
    return resources.files("magneton.report").joinpath(f"assets/{name}").read_text(encoding="utf-8")


def as_mapping(report: Any) -> Mapping[str, Any]:
    """The report as the JSON contract: a dict as it is, a typed model through msgspec."""
    if isinstance(report, Mapping):
        return report
    to_dict = getattr(report, "to_dict", None)  # the typed Report: exactly what its JSON file holds
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, Mapping):
            return data
    import msgspec

    try:
        data = msgspec.to_builtins(report)
    except TypeError as err:
        raise ReportFormatError(f"cannot render {type(report).__name__} as a report: {err}") from err
    if not isinstance(data, Mapping):
        raise ReportFormatError(f"cannot render {type(report).__name__} as a report: not a mapping")
    return data


def render_html(report: Any) -> str:
    """The whole report as one self-contained HTML document (no external resource of any kind)."""
    data = as_mapping(report)
    if "nodes" not in data and "regions" not in data:
        raise ReportFormatError("not a magneton report: it has neither 'nodes' nor 'regions'")
    title = " vs ".join(map(str, data["targets"])) if data.get("targets") else str(data.get("target", "report"))
    # A diff keeps each program's nodes in its sides: the energy views then show side A.
    chart_report: Mapping[str, Any] = data
    side_note = ""
    sides = data.get("sides") or data.get("reports") or [data.get("a")]
    if not data.get("nodes") and isinstance(sides[0], Mapping) and sides[0].get("nodes"):
        chart_report, side_note = sides[0], " (side A)"
    elif not data.get("nodes") and any(
        (entry.get("energy_j") or 0) > 0 for r in data.get("regions") or [] for entry in r.get("a_split") or []
    ):  # the split has energies unless the diff skipped its per-operator pass (--no-op-split)
        split = [entry for r in data["regions"] for entry in r.get("a_split") or []]
        chart_report = {**data, "nodes": [{**entry, "module_path": "", "inputs": [], "outputs": []} for entry in split]}
        side_note = " (side A, from the regions' per-operator split)"
    has_nodes = bool(chart_report.get("nodes"))
    energy_sections = (
        f'<section id="energy"><h2>Where the energy goes{side_note}</h2><div class="controls">'
        '<label>colour by <select id="color-mode"></select></label> '
        '<label><input id="icicle-fold" type="checkbox" checked> fold repeated layers</label> '
        '<button id="zoom-out" type="button">zoom out</button> <span id="breadcrumb" class="dim"></span></div>'
        '<div id="icicle" class="chart"></div><div id="details" class="details"><p class="dim">Click a box for its '
        "operators, shapes, FLOPs, bytes, throughput and source.</p></div></section>"
        f'<section id="operators"><h2>Operators{side_note}</h2><div class="controls">'
        '<input id="op-filter" type="search" placeholder="filter: op, module, file:line"> '
        '<label><input id="op-fold" type="checkbox" checked> fold '
        'repeated layers</label> <span id="op-count" class="dim"></span></div><div class="tablewrap">'
        '<table id="op-table" class="ops"><thead></thead><tbody></tbody></table></div></section>'
        if has_nodes
        else ""
    )
    body = (
        render_header(data)
        + '<nav id="nav"></nav>'
        + render_findings(data)
        + render_diff(data)
        + energy_sections
        + render_overhead(data)
        + render_training(data)
    )
    chart = chart_data(chart_report) if has_nodes else {"nodes": [], "sources": []}
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Magneton · {_e(title)}</title><style>{_asset('report.css')}</style></head>"
        f'<body><main id="report">{body}</main>'
        f'<footer class="dim">magneton {_e(data.get("magneton_version", "?"))} · {_e(data.get("schema", "?"))}</footer>'
        f'<script type="application/json" id="magneton-data">{script_json(chart)}</script>'
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )


def write_html(path: Path, report: Any) -> None:
    """Render and write atomically (never a half-written file)."""
    from magneton.atomic import write_text_atomic

    write_text_atomic(Path(path), render_html(report))


def repr_html(report: Any, height_px: int = 820) -> str:
    """For notebooks: the page inside an ``iframe srcdoc``, so its script runs and its styles stay inside."""
    return (
        f'<iframe srcdoc="{html.escape(render_html(report), quote=True)}" '
        f'style="width:100%;height:{height_px}px;border:1px solid #ddd" '
        'sandbox="allow-scripts" title="Magneton energy report"></iframe>'
    )


__all__ = [
    "ReportFormatError",
    "chart_data",
    "render_diff",
    "render_findings",
    "render_header",
    "render_html",
    "render_training",
    "repr_html",
    "script_json",
    "write_html",
]
