"""Findings: what Magneton reports as waste, from any of its three detectors.

A finding comes from a rule (source or graph pattern), an anomaly (measured
energy well above what the expected-energy regression or a counterfactual
replay says it should cost) or a diff (a matched region where one program
spends clearly more than its peer). All three share one shape, so reports,
SARIF, HTML and the corpus scorer treat them alike. Field names are part of the
public ``magneton.report/1`` contract: add fields freely, rename none.

Every energy figure says where it came from (``energy_provenance``): the
backend's provenance for measured or estimated joules, ``replayed`` for a trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from magneton.provenance import EnergyProvenance

FindingKind = Literal["rule", "anomaly", "diff"]
Category = Literal["API misuse", "Misconfiguration", "Redundant computation"]
CATEGORIES: tuple[Category, ...] = ("API misuse", "Misconfiguration", "Redundant computation")


class FindingSource(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """Where a finding lives in code: a line, and the smallest expression that holds the waste."""

    file: str
    line: int
    code: str = ""  # the source line, stripped
    function: str | None = None
    end_line: int | None = None  # last line of ``expression`` when it spans several
    expression: str | None = None  # the smallest enclosing libcst expression, as source text


class Finding(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """One piece of waste: where it is, what it costs, and what to write instead."""

    kind: FindingKind
    rule: str | None  # catalog id (MAG123) for rule findings; None for anomalies and diffs without a rule
    category: Category | None
    title: str
    energy_j: float  # joules per call of the workload held by the finding's nodes (0 for a potential finding)
    excess_energy_j: float  # joules per call that the fix or the better peer would save
    share: float  # excess_energy_j / the workload's total energy
    source: FindingSource | None
    nodes: tuple[str, ...] = ()  # OpNode ids the finding covers
    suggestion: str = ""
    explanation: str = ""  # why it was flagged: strides, throughput, which ops replace which
    energy_provenance: str = "measured"  # measured | estimated | replayed | predicted: how energy_j was obtained
    excess_provenance: str = "measured"  # e.g. "predicted" when the excess is measured minus a model's prediction
    peer_source: FindingSource | None = None  # diff: the counterpart line on side B
    call_site: FindingSource | None = None  # the user's frame that called into a library holding the waste
    potential: bool = False  # a source match on lines that never ran: ranked after every measured finding
    fix: str | None = None  # a unified diff that applies the rule's fixer
    details: dict[str, Any] = msgspec.field(default_factory=dict)  # detector-specific extras, JSON-safe
    provenance: EnergyProvenance | None = None  # full provenance of energy_j (sensor, formula, model, trace)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most excess energy first; potential (never-ran) findings after every measured one."""
    return sorted(findings, key=lambda f: (f.potential, -f.excess_energy_j, f.rule or "", f.title))


__all__ = ["CATEGORIES", "Category", "Finding", "FindingKind", "FindingSource", "sort_findings"]
