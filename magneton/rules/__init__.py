"""The rule engine: rule base class, discovery, source (libcst) and graph detection, testing helpers.

The catalog itself lives in the top-level ``rules/`` folder, shipped as ``magneton.rules_catalog``.
Only light modules are imported here; libcst and torch load when a detector runs.
"""

from __future__ import annotations

from magneton.rules.base import ID_RANGES, GraphHit, Invalid, Knob, Rule, SourceHit, Valid
from magneton.rules.discovery import RuleError, RuleSet, load_rules

__all__ = [
    "ID_RANGES",
    "GraphHit",
    "Invalid",
    "Knob",
    "Rule",
    "RuleError",
    "RuleSet",
    "SourceHit",
    "Valid",
    "load_rules",
]
