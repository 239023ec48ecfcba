"""Turning every rule's VALID and INVALID examples into tests (used by tests/test_rule_examples.py).

Source examples are linted as text. Graph and configuration examples are programs
defining ``workload()``; they are captured with Magneton's own capture (as
``magneton analyze`` would) and the rule's graph or runtime detector runs on the
result, with the example's ``env`` overriding device settings (so GPU-only
configuration rules are tested on CPU machines).
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.discovery import RuleSet


def example_code(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


@dataclass(frozen=True)
class ExampleCase:
    rule: type[Rule]
    example: Valid | Invalid
    index: int

    @property
    def valid(self) -> bool:
        return isinstance(self.example, Valid)

    @property
    def test_id(self) -> str:
        return f"{self.rule.id}-{'valid' if self.valid else 'invalid'}-{self.index}"


def example_cases(rules: RuleSet) -> Iterator[ExampleCase]:
    for rule in rules.rules:
        for index, valid in enumerate(rule.valid_examples()):
            yield ExampleCase(rule, valid, index)
        for index, invalid in enumerate(rule.invalid_examples()):
            yield ExampleCase(rule, invalid, index)


def source_hits(rule: type[Rule], code: str) -> list[Any]:
    from magneton.rules.source import lint_text

    result = lint_text(example_code(code), "example.py", [rule])
    if result.error:
        raise AssertionError(f"{rule.id}: {result.error}")
    return result.matches


def graph_hits(rule: type[Rule], code: str, env: dict[str, Any] | None = None) -> list[GraphHit]:
    """Capture the example program and run the rule's graph and runtime detectors on it."""
    from magneton.capture import capture
    from magneton.rules.graphview import GraphView
    from magneton.rules.runtime import RuntimeEnv
    from magneton.workload import load_target

    with tempfile.TemporaryDirectory(prefix="magneton-example-") as folder:
        path = Path(folder) / f"example_{rule.id.lower()}.py"
        path.write_text(example_code(code), encoding="utf-8")
        graph = capture(load_target(f"{path}:workload"))
        view = GraphView(graph)
        hits = list(rule().check_graph(view)) if rule.has_graph() else []
        if rule.has_runtime():
            hits += list(rule().check_runtime(RuntimeEnv.current(view, **(env or {}))))
        return hits


def check_example(case: ExampleCase) -> None:
    """Raise AssertionError when the rule disagrees with its own example."""
    rule, example = case.rule, case.example
    is_program = "def workload" in example.code
    if is_program and (rule.has_graph() or rule.has_runtime()):
        hits: list[Any] = graph_hits(rule, example.code, dict(example.env))
    elif rule.has_source():
        hits = source_hits(rule, example.code)
    else:
        raise AssertionError(f"{case.test_id}: a graph or configuration example must define workload()")
    if isinstance(example, Valid):
        assert not hits, f"{case.test_id} must stay silent ({example.why or 'no reason given'}), got {hits}"
        return
    assert hits, f"{case.test_id}: the rule found nothing in its INVALID example"
    if example.line is not None and not is_program:
        assert hits[0].line == example.line, f"{case.test_id}: expected line {example.line}, got {hits[0].line}"
    if rule.has_source() and not is_program:
        check_fix(rule, example)


def check_fix(rule: type[Rule], example: Invalid) -> None:
    """The fixer produces the expected code, which parses, and fixing it again changes nothing."""
    from magneton.fix.apply import fix_text

    code = example_code(example.code)
    result = fix_text(code, "example.py", [rule])
    assert result.error is None, result.error
    if example.expected_fix is None:
        assert not result.changed, f"{rule.id}: fixed an example that names no expected fix:\n{result.diff()}"
        return
    expected = example_code(example.expected_fix)
    assert result.fixed == expected, (
        f"{rule.id}: fix differs from expected:\n{result.fixed}\n--- expected ---\n{expected}"
    )
    again = fix_text(result.fixed, "example.py", [rule])
    assert not again.changed, f"{rule.id}: the fix is not idempotent:\n{again.diff()}"


__all__ = ["ExampleCase", "check_example", "check_fix", "example_cases", "example_code", "graph_hits", "source_hits"]
