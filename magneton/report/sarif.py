"""SARIF 2.1.0 output, which CI systems (GitHub code scanning, GitLab, Azure DevOps) display inline.

Rule matches from ``magneton lint`` become results with their region, code
snippet and, for rules with a fixer, a SARIF ``fix`` (the replacement text for
the flagged region). Files that could not be read or parsed become tool
execution notifications, so the run still reports them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magneton import __version__

if TYPE_CHECKING:
    from magneton.rules.base import Rule
    from magneton.rules.lint import LintResult
    from magneton.rules.source import SourceMatch

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/magneton-energy/magneton"


def _uri(path: str, root: Path) -> str:
    """A forward-slash path relative to ``root`` when inside it (SARIF wants URIs), else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_uri()


def rule_descriptor(rule: type[Rule]) -> dict[str, Any]:
    doc = rule.doc()
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary()},
        "fullDescription": {"text": doc},
        "help": {"text": f"{rule.message}. Instead: {rule.suggestion}", "markdown": doc},
        "defaultConfiguration": {"level": "note" if rule.experimental() else "warning"},
        "properties": {
            "category": rule.category,
            "kind": rule.kind(),
            "fixable": rule.fixable,
            "tags": ["energy", rule.category.lower().replace(" ", "-"), rule.kind()],
        },
    }


def _region(match: SourceMatch) -> dict[str, Any]:
    return {
        "startLine": match.line,
        "startColumn": match.column,
        "endLine": match.end_line,
        "endColumn": match.end_column,
        "snippet": {"text": match.expression},
    }


def _result(match: SourceMatch, index: dict[str, int], root: Path) -> dict[str, Any]:
    location = {"artifactLocation": {"uri": _uri(match.path, root), "uriBaseId": "%SRCROOT%"}}
    result: dict[str, Any] = {
        "ruleId": match.rule,
        "ruleIndex": index[match.rule],
        "level": "warning",
        "message": {"text": f"{match.message}. Instead: {match.suggestion}" if match.suggestion else match.message},
        "locations": [{"physicalLocation": {**location, "region": _region(match)}}],
        "partialFingerprints": {"magneton/expression": f"{match.rule}:{' '.join(match.expression.split())}"},
        "properties": {"category": match.category},
    }
    if match.replacement is not None:
        result["fixes"] = [
            {
                "description": {"text": f"{match.rule}: replace with {match.replacement}"},
                "artifactChanges": [
                    {
                        **location,
                        "replacements": [
                            {
                                "deletedRegion": {k: v for k, v in _region(match).items() if k != "snippet"},
                                "insertedContent": {"text": match.replacement},
                            }
                        ],
                    }
                ],
            }
        ]
    return result


def lint_sarif(result: LintResult, rules: Sequence[type[Rule]], root: Path | None = None) -> dict[str, Any]:
    """The SARIF log of one lint run; paths relative to ``root`` (default: the working directory)."""
    root = Path(os.path.abspath(root or Path.cwd()))
    index = {rule.id: position for position, rule in enumerate(rules)}
    notifications = [
        {
            "level": "error",
            "message": {"text": file.error},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(file.path, root)}}}],
        }
        for file in result.files
        if file.error
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "magneton",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [rule_descriptor(rule) for rule in rules],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri() + "/"}},
                "invocations": [
                    {"executionSuccessful": not notifications, "toolExecutionNotifications": notifications}
                ],
                "results": [_result(match, index, root) for match in result.matches],
            }
        ],
    }


__all__ = ["SARIF_SCHEMA", "lint_sarif", "rule_descriptor"]
