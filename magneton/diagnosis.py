"""Source diagnosis: from operator nodes to ``file:line`` and the smallest enclosing libcst expression.

Every finding kind uses it — rule, anomaly and diff — so they all show code the
same way. Call ``diagnose_nodes(graph, node_ids)`` for a finding over graph nodes
(it returns the source of the heaviest node and, when that line is inside a
library, the user's call site), or ``finding_source(file, line)`` for a known line.
Parsed files are cached by path and modification time.
"""

from __future__ import annotations

import linecache
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from magneton.findings import FindingSource

if TYPE_CHECKING:
    from magneton.graph import OpGraph, OpNode, SourceLocation
    from magneton.report.model import Report


@dataclass(frozen=True)
class _Span:
    start_line: int
    start_column: int
    end_line: int
    end_column: int
    code: str


@lru_cache(maxsize=64)
def _statement_spans(path: str, mtime_ns: int) -> tuple[tuple[_Span, tuple[_Span, ...]], ...] | None:
    """For each simple statement (and compound-statement header) of the file: its span and its expressions' spans."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    try:
        from magneton.rules.lint import read_source

        module = cst.parse_module(read_source(path))
    except (OSError, UnicodeDecodeError, SyntaxError, cst.ParserSyntaxError, RecursionError):
        return None
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)

    def span(node: cst.CSTNode) -> _Span:
        where = positions[node]
        return _Span(where.start.line, where.start.column, where.end.line, where.end.column, module.code_for_node(node))

    out: list[tuple[_Span, tuple[_Span, ...]]] = []

    class Collector(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            values: list[cst.CSTNode] = []
            if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Return, cst.Expr)):
                value = getattr(node, "value", None)
                if value is not None:
                    values.append(value)
            elif isinstance(node, (cst.If, cst.While)):
                values.append(node.test)
            elif isinstance(node, cst.For):
                values.append(node.iter)
            elif isinstance(node, cst.With):
                values.extend(item.item for item in node.items)
            if values:
                expressions = [span(inner) for value in values for inner in _expressions(value) if inner in positions]
                out.append((span(node), tuple(expressions)))
            return True

    module.visit(Collector())
    return tuple(out)


def _expressions(node: Any) -> Iterable[Any]:
    import libcst as cst

    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.BaseExpression):
            yield current
        stack.extend(current.children)


def expression_at(path: str, line: int) -> tuple[str, int, int] | None:
    """(expression code, first line, last line) of the smallest expression enclosing ``line``.

    "Enclosing" means: it contains every expression that starts on that line (inside the
    innermost statement holding the line), so for ``y = f(x)`` it is ``f(x)`` and for an
    argument on its own line within a multi-line call it is that argument.
    """
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    statements = _statement_spans(path, mtime)
    if not statements:
        return None
    holding = [(s, exprs) for s, exprs in statements if s.start_line <= line <= s.end_line and exprs]
    if not holding:
        return None
    statement, expressions = min(holding, key=lambda item: item[0].end_line - item[0].start_line)
    starting = [e for e in expressions if e.start_line == line]
    if not starting:
        containing = [e for e in expressions if e.start_line <= line <= e.end_line]
        if not containing:
            return None
        best = min(containing, key=lambda e: (e.end_line - e.start_line, len(e.code)))
        return best.code, best.start_line, best.end_line

    def contains(outer: _Span, inner: _Span) -> bool:
        return (outer.start_line, outer.start_column) <= (inner.start_line, inner.start_column) and (
            outer.end_line,
            outer.end_column,
        ) >= (inner.end_line, inner.end_column)

    candidates = [e for e in expressions if all(contains(e, s) for s in starting)]
    if not candidates:
        return None
    best = min(candidates, key=lambda e: (e.end_line - e.start_line, len(e.code)))
    return best.code, best.start_line, best.end_line


def finding_source(file: str, line: int, function: str | None = None, code: str | None = None) -> FindingSource:
    """A ``FindingSource`` for ``file:line`` with the line's code and its smallest enclosing expression."""
    text = code if code is not None else linecache.getline(file, line).strip()
    found = expression_at(file, line)
    if found is None:
        return FindingSource(file=file, line=line, code=text, function=function)
    expression, _, end_line = found
    return FindingSource(
        file=file,
        line=line,
        code=text,
        function=function,
        end_line=end_line if end_line != line else None,
        expression=expression,
    )


def location_source(location: SourceLocation) -> FindingSource:
    return finding_source(location.file, location.line, location.function, location.code)


def in_library(path: str) -> bool:
    """Code installed as a package (site-packages), as opposed to the user's own files."""
    return any(part in ("site-packages", "dist-packages") for part in os.path.realpath(path).split(os.sep))


def user_frames(graph: OpGraph, node: OpNode) -> list[SourceLocation]:
    """The node's stack frames in user or library code (torch, Magneton, stdlib skipped), outermost first."""
    from magneton.capture.source import is_user_file, parse_stack_trace

    try:
        fx_node = next(n for n in graph.pieces[node.piece].module.graph.nodes if n.name == node.fx_name)
    except (StopIteration, IndexError):
        return [node.source] if node.source else []
    trace = fx_node.meta.get("stack_trace")
    if not trace:
        return [node.source] if node.source else []
    return [frame for frame in parse_stack_trace(trace) if is_user_file(frame.file)]


def call_site(graph: OpGraph, node: OpNode) -> SourceLocation | None:
    """For a node whose source is inside a library: the innermost frame in the user's own code."""
    if node.source is None or not in_library(node.source.file):
        return None
    for frame in reversed(user_frames(graph, node)):
        if not in_library(frame.file):
            return frame
    return None


def diagnose_nodes(
    graph: OpGraph, node_ids: Iterable[str], energies_j: Mapping[str, float] | None = None
) -> tuple[FindingSource | None, FindingSource | None]:
    """(source, call_site) for a finding over ``node_ids``: the heaviest node with a source location decides."""
    by_id = {n.id: n for n in graph.nodes}
    nodes = [by_id[i] for i in node_ids if i in by_id and by_id[i].source is not None]
    if not nodes:
        return None, None
    energies_j = energies_j or {}
    heaviest = max(nodes, key=lambda n: energies_j.get(n.id, 0.0)) if energies_j else nodes[0]
    assert heaviest.source is not None
    site = call_site(graph, heaviest)
    return location_source(heaviest.source), location_source(site) if site else None


__all__ = [
    "attach_sources",
    "call_site",
    "diagnose_nodes",
    "expression_at",
    "finding_source",
    "in_library",
    "location_source",
    "user_frames",
]


def attach_sources(report: Report, graph: OpGraph) -> Report:
    """Every finding of ``report`` with nodes gets a source (file:line + expression) and, inside a library,
    the user's call site — whichever detector made it. Findings that already carry them are left alone."""
    import msgspec

    energies = {node.id: node.energy_j for node in report.nodes}
    updated = []
    for finding in report.findings:
        source, site = finding.source, finding.call_site
        if finding.nodes and (source is None or (site is None and in_library(source.file))):
            found, found_site = diagnose_nodes(graph, finding.nodes, energies)
            source = source or found
            site = site or found_site
        if source is not None and source.expression is None:
            located = finding_source(source.file, source.line, source.function, source.code or None)
            source = msgspec.structs.replace(source, expression=located.expression, end_line=located.end_line)
        if source is not finding.source or site is not finding.call_site:
            finding = msgspec.structs.replace(finding, source=source, call_site=site)
        updated.append(finding)
    return msgspec.structs.replace(report, findings=updated)
