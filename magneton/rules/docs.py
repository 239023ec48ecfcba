"""The rule reference (docs/rules.md), generated from the rule classes; a test checks it for drift.

Regenerate with ``just docs`` (``python -m magneton.rules.docs docs/rules.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from magneton.rules.base import ID_RANGES, Rule
from magneton.rules.discovery import RuleSet, load_rules
from magneton.rules.testing import example_code


def rule_json(rule: type[Rule]) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "category": rule.category,
        "kind": rule.kind(),
        "experimental": rule.experimental(),
        "fixable": rule.fixable,
        "detectors": [
            d
            for d, on in (("source", rule.has_source()), ("graph", rule.has_graph()), ("runtime", rule.has_runtime()))
            if on
        ],
        "message": rule.message,
        "suggestion": rule.suggestion,
        "knob": None
        if rule.knob is None
        else {"setting": rule.knob.setting, "value": rule.knob.value, "how": rule.knob.how},
        "doc": rule.doc(),
    }


def rule_markdown(rule: type[Rule], heading: str = "##") -> str:
    doc = rule.doc()
    summary, _, body = doc.partition("\n")
    detectors = ", ".join(rule_json(rule)["detectors"])
    lines = [
        f"{heading} {rule.id} {rule.name}",
        "",
        f"**{summary.strip()}**",
        "",
        f"- category: {rule.category}; kind: {rule.kind()}{' (off by default)' if rule.experimental() else ''}; "
        f"detectors: {detectors}; fixer: {'yes' if rule.fixable else 'no'}",
        f"- message: {rule.message}",
        f"- instead: {rule.suggestion}" if rule.suggestion else "",
        f"- knob: `{rule.knob.how}`" if rule.knob else "",
        "",
        body.strip(),
        "",
    ]
    invalid = rule.invalid_examples()[0]
    lines += ["Flagged:", "", "```python", example_code(invalid.code).rstrip(), "```", ""]
    if invalid.expected_fix is not None:
        lines += ["Fixed:", "", "```python", example_code(invalid.expected_fix).rstrip(), "```", ""]
    return "\n".join(line for line in lines if line is not None).replace("\n\n\n", "\n\n")


def render(ruleset: RuleSet) -> str:
    out = [
        "# Rule reference",
        "",
        "<!-- Generated from the rule classes by `just docs`; a test fails when this file is out of date. -->",
        "",
        f"{len(ruleset.rules)} rules, {sum(1 for r in ruleset.rules if r.fixable)} with a fixer. "
        "Categories: API misuse, Misconfiguration, Redundant computation. Id ranges:",
        "",
    ]
    out += [f"- {text}" for _, text in ID_RANGES.values()]
    out += ["", "| id | name | category | fixer | what it finds |", "|---|---|---|---|---|"]
    for rule in ruleset.rules:
        summary = rule.summary().replace("|", "\\|")
        out.append(
            f"| [{rule.id}](#{rule.id.lower()}-{rule.name}) | {rule.name} | {rule.category} | "
            f"{'yes' if rule.fixable else ''} | {summary} |"
        )
    out.append("")
    for rule in ruleset.rules:
        out.append(rule_markdown(rule))
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render(load_rules())
    if argv:
        Path(argv[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
