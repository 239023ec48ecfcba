"""Applying fixers: the fixed text, its unified diff, and a safe write.

A file is rewritten only when the fixed text parses (libcst and Python's own
compiler), atomically (a temporary file renamed over), with the original
permissions, encoding and line endings. Fixing a fixed file changes nothing.
"""

from __future__ import annotations

import difflib
import os
import stat
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from magneton.atomic import write_text_atomic
from magneton.errors import MagnetonError
from magneton.rules.base import Rule

_MAX_ROUNDS = 5  # nested hits (a fix inside a fixed expression) need another round


class FixError(MagnetonError):
    """A fix could not be produced or written; the message names the file."""


@dataclass(frozen=True)
class AppliedFix:
    rule: str
    line: int  # in the text the round started from
    before: str
    after: str


@dataclass
class FixResult:
    path: str
    original: str
    fixed: str
    applied: list[AppliedFix] = field(default_factory=list)
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.fixed != self.original

    def diff(self) -> str:
        return unified_diff(self.original, self.fixed, self.path)


def unified_diff(before: str, after: str, path: str) -> str:
    old, new = (path, path) if os.path.isabs(path) else (f"a/{path}", f"b/{path}")
    return "".join(
        difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), old, new, n=3)
    )


def _add_imports(text: str, modules: set[str], newline: str) -> str:
    """``import torch`` (etc.) after the docstring and ``__future__`` imports, unless already imported."""
    module = cst.parse_module(text)
    present = set()
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Import):
                    present |= {module.code_for_node(a.name) for a in small.names if a.asname is None}
    missing = sorted(modules - present)
    if not missing:
        return text
    position = 0
    for index, statement in enumerate(module.body):
        is_docstring = index == 0 and _is_docstring(statement)
        is_future = (
            isinstance(statement, cst.SimpleStatementLine)
            and isinstance(statement.body[0], cst.ImportFrom)
            and module.code_for_node(statement.body[0].module or cst.Name("")) == "__future__"
        )
        if is_docstring or is_future:
            position = index + 1
        else:
            break
    new_lines = [cst.parse_statement(f"import {name}{newline}") for name in missing]
    body = list(module.body[:position]) + new_lines + list(module.body[position:])
    return module.with_changes(body=body).code


def _is_docstring(statement: object) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def fix_text(text: str, path: str, rules: Sequence[type[Rule]]) -> FixResult:
    """Apply every unsuppressed fixer hit of ``rules`` until nothing changes; the result always parses."""
    from magneton.rules.source import _is_suppressed, positions, run_rules

    result = FixResult(path, text, text)
    fixers = [rule for rule in rules if rule.fixable]
    needed: set[str] = set()
    current = text
    for _ in range(_MAX_ROUNDS):
        try:
            run = run_rules(current, path, fixers)
        except cst.ParserSyntaxError as err:
            result.error = f"{path}: cannot parse: {str(err).splitlines()[0]}"
            return result
        if run is None:
            break
        lines = current.splitlines()
        where = positions(run.module) if run.hits else {}
        replacements: dict[int, cst.CSTNode] = {}
        for raw in run.hits:
            if raw.hit.replacement is None:
                continue
            start, end = where[raw.hit.node].start, where[raw.hit.node].end
            if _is_suppressed(raw.rule.id, lines, start.line, end.line) or id(raw.hit.node) in replacements:
                continue
            replacements[id(raw.hit.node)] = raw.hit.replacement
            result.applied.append(
                AppliedFix(
                    raw.rule.id,
                    start.line,
                    run.module.code_for_node(raw.hit.node),
                    run.module.code_for_node(raw.hit.replacement),
                )
            )
        if not replacements:
            break
        needed |= run.ctx.needed_imports
        fixed = run.module.visit(_Replacer(replacements)).code
        if fixed == current:
            break
        current = fixed
    if needed and current != text:
        newline = "\r\n" if "\r\n" in text else "\n"
        current = _add_imports(current, needed, newline)
    problem = parse_problem(current, path)
    if problem:
        result.error = f"{path}: the fixed code does not parse ({problem}); nothing was changed"
        return result
    result.fixed = current
    return result


def parse_problem(text: str, path: str) -> str | None:
    import warnings

    try:
        cst.parse_module(text)
        with warnings.catch_warnings():  # "is not callable; perhaps you missed a comma?" is the user's business
            warnings.simplefilter("ignore", SyntaxWarning)
            compile(text, path, "exec", dont_inherit=True)
    except (cst.ParserSyntaxError, SyntaxError, ValueError) as err:
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    return None


class _Replacer(cst.CSTTransformer):
    """Swaps nodes by identity."""

    def __init__(self, replacements: dict[int, cst.CSTNode]) -> None:
        super().__init__()
        self.replacements = replacements

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> cst.CSTNode:  # type: ignore[override]
        return self.replacements.get(id(original_node), updated_node)


def _encoding(path: Path) -> str:
    with open(path, "rb") as handle:
        return tokenize.detect_encoding(handle.readline)[0]


def write_fixed(path: Path, original: str, fixed: str) -> None:
    """Replace ``path`` with ``fixed`` atomically, keeping its mode and encoding; refuse on parse errors
    or when the file changed since it was read."""
    problem = parse_problem(fixed, str(path))
    if problem:
        raise FixError(f"{path}: the fixed code does not parse ({problem}); the file was not changed")
    encoding = _encoding(path)
    with open(path, encoding=encoding, newline="") as handle:
        if handle.read() != original:
            raise FixError(f"{path}: the file changed while it was being fixed; run magneton fix again")
    write_text_atomic(path, fixed, encoding=encoding, newline="", mode=stat.S_IMODE(os.stat(path).st_mode))


def fix_file(path: str, rules: Sequence[type[Rule]]) -> FixResult:
    from magneton.rules.lint import read_source

    try:
        text = read_source(path)
    except (OSError, UnicodeDecodeError, SyntaxError) as err:
        return FixResult(path, "", "", error=f"{path}: cannot read: {err}")
    return fix_text(text, path, rules)


__all__ = [
    "AppliedFix",
    "FixError",
    "FixResult",
    "fix_file",
    "fix_text",
    "parse_problem",
    "unified_diff",
    "write_fixed",
]
