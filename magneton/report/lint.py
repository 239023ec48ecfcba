"""Terminal output of ``magneton lint``: one block per finding, then a one-line summary."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from magneton.rules.lint import LintResult
from magneton.rules.source import FileResult


def render_file(file: FileResult, console: Console) -> None:
    if file.error:
        console.print(f"[bold red]error:[/] {escape(file.error)}", highlight=False)
    for match in file.matches:
        fix = " [green](fixable)[/]" if match.replacement is not None else ""
        console.print(
            f"[bold]{escape(match.path)}:{match.line}:{match.column}[/]: [yellow]{match.rule}[/] "
            f"{escape(match.name)} [dim]({escape(match.category)})[/]{fix}",
            highlight=False,
        )
        console.print(f"  {escape(match.message)}", highlight=False)
        console.print(f"  [dim]|[/] {escape(match.code)}", highlight=False)
        if match.replacement is not None:
            console.print(f"  [green]fix:[/] {escape(' '.join(match.replacement.split()))}", highlight=False)
        elif match.suggestion:
            console.print(f"  [cyan]instead:[/] {escape(match.suggestion)}", highlight=False)


def summary_line(result: LintResult) -> str:
    files, findings, errors = len(result.files), len(result.matches), len(result.errors)
    fixable = sum(1 for m in result.matches if m.replacement is not None)
    return (
        f"linted {files} file{'s' if files != 1 else ''} ({result.lines} lines): "
        f"{findings} finding{'s' if findings != 1 else ''} ({fixable} fixable), "
        f"{errors} error{'s' if errors != 1 else ''}"
    )


__all__ = ["render_file", "summary_line"]
