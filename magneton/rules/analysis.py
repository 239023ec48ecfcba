"""Rules inside ``magneton analyze``: graph, configuration and source rules, tied to measured energy.

- Graph and configuration rules run on the captured graph; their finding points at the
  operator's line (often inside a library) and at the user's call site.
- Source rules run on the user's files that the graph ran through (and the target's
  file). A match is tied to every operator whose stack passes through the matched
  lines, so it carries their measured (or estimated) energy; a match on lines that
  never ran is *potential* and ranks after every measured finding.

The excess energy of a rule finding is an upper bound: all energy of the matched
operators (the fix removes some or all of it). ``magneton fix --verify`` measures
the real saving. Provenance strings say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magneton.diagnosis import diagnose_nodes, in_library, user_frames
from magneton.findings import Finding, FindingSource, sort_findings
from magneton.graph import OpGraph
from magneton.rules.base import GraphHit, Rule
from magneton.rules.discovery import load_rules

if TYPE_CHECKING:
    from magneton.report.model import Report


def _bound_provenance(provenance: str) -> str:
    return f"{provenance}, upper bound: all energy of the matched operators"


def _graph_finding(
    rule: type[Rule],
    hit: GraphHit,
    graph: OpGraph,
    energies: Mapping[str, float],
    total_j: float,
    provenance: str,
    full_provenance: Any,
) -> Finding:
    energy_j = sum(energies.get(node_id, 0.0) for node_id in dict.fromkeys(hit.nodes))
    source, site = diagnose_nodes(graph, hit.nodes[:1] or hit.nodes, energies)
    return Finding(
        kind="rule",
        rule=rule.id,
        category=rule.category,
        title=hit.message or rule.message,
        energy_j=energy_j,
        excess_energy_j=energy_j,
        share=energy_j / total_j if total_j > 0 else 0.0,
        source=source,
        call_site=site,
        nodes=tuple(dict.fromkeys(hit.nodes)),
        suggestion=rule.suggestion,
        explanation=rule.summary(),
        energy_provenance=provenance,
        excess_provenance=_bound_provenance(provenance),
        provenance=full_provenance,
        details={"detector": "graph" if rule.has_graph() else "runtime", **dict(hit.details)}
        | ({"knob": rule.knob.how} if rule.knob else {}),
    )


def target_file(target: str) -> str | None:
    """The Python file of a ``file.py:fn`` or ``package.module:fn`` target, without importing anything new."""
    where = target.rpartition(":")[0]
    if where.endswith(".py"):
        return os.path.realpath(where) if os.path.isfile(where) else None
    import sys

    module = sys.modules.get(where)
    path = getattr(module, "__file__", None)
    return os.path.realpath(path) if path else None


def _source_files(graph: OpGraph, extra: Iterable[str | None]) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """The user's files the graph ran through, and for each node every (file, line) of its user frames."""
    frames: dict[str, list[tuple[str, int]]] = {}
    files: dict[str, None] = {}
    for node in graph.nodes:
        stack = [(os.path.realpath(f.file), f.line) for f in user_frames(graph, node)]
        frames[node.id] = stack
        for file, _ in stack:
            if not in_library(file):
                files[file] = None
    for path in extra:
        if path:
            files[os.path.realpath(path)] = None
    return [f for f in files if os.path.isfile(f)], frames


def rule_findings(
    graph: OpGraph,
    energies: Mapping[str, float],
    target: str,
    provenance: str = "measured",
    full_provenance: Any = None,
    rule_dirs: Sequence[str | Path] = (),
    rule_ids: Sequence[str] = (),
    experimental: bool = False,
) -> tuple[list[Finding], list[str]]:
    """Every rule finding for an analysed workload, and the notes (unparsable files, crashed rules).

    ``energies`` maps node ids to joules per call; ``provenance`` is how they were obtained
    (measured / estimated / replayed) and ``full_provenance`` the report's EnergyProvenance.
    """
    from magneton.fix.apply import fix_text
    from magneton.rules.graphview import GraphView
    from magneton.rules.lint import lint_file, read_source
    from magneton.rules.runtime import RuntimeEnv

    rules = load_rules(rule_dirs).select(rule_ids, experimental)
    total_j = sum(energies.values())
    view = GraphView(graph)
    findings: list[Finding] = []
    notes: list[str] = []
    env = None
    for rule in rules:
        try:
            hits = list(rule().check_graph(view)) if rule.has_graph() else []
            if rule.has_runtime():
                env = env or RuntimeEnv.current(view)
                hits += list(rule().check_runtime(env))
        except Exception as err:  # one broken rule must not lose the report
            notes.append(f"rule {rule.id} crashed on the graph: {type(err).__name__}: {err}")
            continue
        findings += [_graph_finding(rule, hit, graph, energies, total_j, provenance, full_provenance) for hit in hits]

    source_rules = [r for r in rules if r.has_source()]
    files, frames = _source_files(graph, [target_file(target)])
    for path in files:
        result = lint_file(path, source_rules)
        if result.error:
            notes.append(result.error)
        for match in result.matches:
            lines = range(match.line, match.end_line + 1)
            tied = [n.id for n in graph.nodes if any(f == path and line in lines for f, line in frames[n.id])]
            energy_j = sum(energies.get(node_id, 0.0) for node_id in tied)
            rule = next(r for r in source_rules if r.id == match.rule)
            fix = None
            if match.replacement is not None:
                fixed = fix_text(read_source(path), path, [rule])
                fix = fixed.diff() if fixed.changed and fixed.error is None else None
            findings.append(
                Finding(
                    kind="rule",
                    rule=match.rule,
                    category=match.category,
                    title=match.message,
                    energy_j=energy_j,
                    excess_energy_j=energy_j,
                    share=energy_j / total_j if total_j > 0 else 0.0,
                    source=FindingSource(
                        file=path,
                        line=match.line,
                        code=match.code,
                        end_line=match.end_line if match.end_line != match.line else None,
                        expression=match.expression,
                    ),
                    nodes=tuple(tied),
                    suggestion=match.suggestion,
                    explanation=rule.summary(),
                    energy_provenance=provenance,
                    excess_provenance=_bound_provenance(provenance),
                    provenance=full_provenance,
                    potential=not tied,
                    fix=fix,
                    details={"detector": "source", "column": match.column},
                )
            )
    return sort_findings(_merge_confirmed(findings)), notes


def _merge_confirmed(findings: list[Finding]) -> list[Finding]:
    """A graph finding over the same operators as a source finding confirms it: one finding, both ids named."""
    import msgspec

    source_findings = [f for f in findings if f.details.get("detector") == "source" and f.nodes]
    kept: list[Finding] = []
    confirmed: dict[int, list[str]] = {}
    for finding in findings:
        if finding.details.get("detector") == "graph":
            twin = next((i for i, s in enumerate(source_findings) if set(finding.nodes) & set(s.nodes)), None)
            if twin is not None and finding.category == source_findings[twin].category:
                confirmed.setdefault(twin, []).append(str(finding.rule))
                continue
        kept.append(finding)
    for index, rules in confirmed.items():
        original = source_findings[index]
        updated = msgspec.structs.replace(original, details={**original.details, "confirmed_by": rules})
        kept[kept.index(original)] = updated
    return kept


def add_rule_findings(report: Report, graph: OpGraph, target: str, rule_dirs: Sequence[str | Path] = ()) -> Report:
    """The report with rule findings added (sorted: most excess energy first, potential ones last)."""
    import msgspec

    energies = {node.id: node.energy_j for node in report.nodes}
    findings, notes = rule_findings(
        graph, energies, target, report.backend.provenance, report.energy_provenance, rule_dirs
    )
    # Share of the whole workload, as the report defines it (not of the per-node sum).
    total_j = report.total_energy_j
    findings = [msgspec.structs.replace(f, share=f.excess_energy_j / total_j if total_j > 0 else 0.0) for f in findings]
    return msgspec.structs.replace(
        report,
        findings=sort_findings([*report.findings, *findings]),
        rule_notes=[*report.rule_notes, *notes],
    )


__all__ = ["add_rule_findings", "rule_findings", "target_file"]
