"""Static linting of files and folders: read, prefilter, parse, run source rules. Never runs user code."""

from __future__ import annotations

import tokenize
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from magneton.rules.base import Rule
from magneton.rules.source import FileResult, SourceMatch, iter_python_files, lint_text


def read_source(path: str) -> str:
    """Text of a Python file, honouring its encoding cookie; newlines kept as written."""
    with open(path, "rb") as handle:
        encoding, _ = tokenize.detect_encoding(handle.readline)
    with open(path, encoding=encoding, newline="") as handle:
        return handle.read()


@dataclass
class LintResult:
    files: list[FileResult] = field(default_factory=list)

    @property
    def matches(self) -> list[SourceMatch]:
        return [m for f in self.files for m in f.matches]

    @property
    def errors(self) -> list[str]:
        return [f.error for f in self.files if f.error]

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    def to_json(self, rules: Sequence[type[Rule]]) -> dict[str, object]:
        return {
            "schema": "magneton.lint/1",
            "rules": [r.id for r in rules],
            "files": len(self.files),
            "lines": self.lines,
            "errors": self.errors,
            "findings": [m.to_json() for m in self.matches],
        }


def lint_file(path: str, rules: Sequence[type[Rule]]) -> FileResult:
    try:
        text = read_source(path)
    except (OSError, UnicodeDecodeError, SyntaxError) as err:  # SyntaxError: a bad encoding cookie
        return FileResult(path, error=f"{path}: cannot read: {err}")
    return lint_text(text, path, rules)


def lint_paths(
    paths: Sequence[str], rules: Sequence[type[Rule]], on_file: Callable[[FileResult], None] | None = None
) -> LintResult:
    """Lint every .py file under ``paths``; a file that cannot be read or parsed is reported and skipped."""
    result = LintResult()
    for path, error in iter_python_files(paths):
        file_result = FileResult(path, error=error) if error else lint_file(path, rules)
        result.files.append(file_result)
        if on_file is not None:
            on_file(file_result)
    return result


__all__ = ["LintResult", "lint_file", "lint_paths", "read_source"]
