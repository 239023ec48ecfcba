"""docs/rules.md is generated from the rule classes; it must not drift (regenerate with `just docs`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from magneton.rules import load_rules
from magneton.rules.docs import render

ROOT = Path(__file__).resolve().parent.parent


def test_rules_md_is_up_to_date() -> None:
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert text == render(load_rules()), "docs/rules.md is out of date: run `just docs`"


def test_every_rule_is_documented() -> None:
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for rule in load_rules().rules:
        assert f"## {rule.id} {rule.name}" in text


def test_rules_command_lists_and_shows() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "magneton", "rules"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert listing.returncode == 0
    assert all(rule.id in listing.stdout for rule in load_rules().rules)
    shown = subprocess.run(
        [sys.executable, "-m", "magneton", "rules", "show", "MAG113"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "topk" in shown.stdout
    unknown = subprocess.run(
        [sys.executable, "-m", "magneton", "rules", "show", "MAG999"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2 and "no rule" in unknown.stderr
