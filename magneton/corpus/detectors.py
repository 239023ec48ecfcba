"""Calling Magneton's detectors on a case, each through its public API.

Every step returns a :class:`StepResult`. A detector that this build does not
have yet is ``not-available`` (and scored as such, never as a miss or a hit); a
detector that fails on one case is an ``error`` for that case only.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from magneton.corpus.case import Case
from magneton.findings import Finding, FindingSource, sort_findings

STEPS = ("analyze", "diff", "fast", "lint", "fix")
STEP_TITLES = {
    "analyze": "analyze slow (no peer)",
    "diff": "diff slow vs fast",
    "fast": "analyze fast (false positives)",
    "lint": "lint slow",
    "fix": "fix --verify slow",
}


@dataclass(frozen=True)
class StepResult:
    status: str  # ok | not-available | error | skipped
    detail: str = ""
    findings: tuple[Finding, ...] = ()  # sorted: most excess energy first, potential ones last
    total_energy_j: float | None = None  # joules per call of the analysed workload (side A for a diff)
    extras: Mapping[str, Any] = field(default_factory=dict)  # step-specific figures, JSON-safe

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def not_available(why: str) -> StepResult:
    return StepResult("not-available", why)


@dataclass(frozen=True)
class EvalOptions:
    backend: str = "auto"
    trials: int = 3  # energy-pass trials per analysis; the corpus favours breadth over tight intervals


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def as_findings(raw: Sequence[Any]) -> tuple[Finding, ...]:
    """Findings from a report, as dicts (JSON) or Finding structs, into Findings, sorted."""
    converted = [
        item if isinstance(item, Finding) else msgspec.convert(msgspec.to_builtins(item), Finding) for item in raw
    ]
    return tuple(sort_findings(converted))


def peerless_detectors() -> list[str]:
    """The detectors ``magneton analyze`` can run with no peer on this build."""
    present = []
    if _module_exists("magneton.expected"):
        present.append("expected-energy anomalies")
    if _module_exists("magneton.rules"):
        present.append("rules")
    return present


def _analyze(target: str, options: EvalOptions) -> StepResult:
    import magneton
    from magneton.corpus.settings import apply_settings, current_settings
    from magneton.workload import load_target

    detectors = peerless_detectors()
    if not detectors:
        return not_available("no peer-less detector in this build (magneton.expected, magneton.rules)")
    before = current_settings()
    try:
        workload = load_target(target)
        report = magneton.analyze(
            workload.fn,
            workload.args,
            workload.kwargs,
            target=target,
            backend=options.backend,
            trials=options.trials,
        )
    finally:
        apply_settings(before)  # a variant's build may change global torch settings
    return StepResult(
        "ok",
        f"detectors: {', '.join(detectors)}",
        as_findings(report.findings),
        float(report.total_energy_j),
    )


def analyze_slow(case: Case, options: EvalOptions) -> StepResult:
    return _analyze(case.target("slow"), options)


def analyze_fast(case: Case, options: EvalOptions) -> StepResult:
    return _analyze(case.target("fast"), options)


def diff_pair(case: Case, options: EvalOptions) -> StepResult:
    if not _module_exists("magneton.diff"):
        return not_available("magneton diff is not in this build (package magneton.diff)")
    return not_available("magneton.diff has no public entry point this evaluation knows yet")


def lint_slow(case: Case) -> StepResult:
    if not _module_exists("magneton.rules.lint"):
        return not_available("magneton lint is not in this build (magneton.rules)")
    from magneton.rules.discovery import load_rules
    from magneton.rules.lint import lint_file

    rules = load_rules().select()
    result = lint_file(str(case.slow_path), rules)
    if result.error:
        return StepResult("error", result.error)
    findings = []
    for match in result.matches:
        data = msgspec.to_builtins(match.to_json())
        findings.append(
            Finding(
                kind="rule",
                rule=data.get("rule"),
                category=data.get("category"),
                title=str(data.get("title") or data.get("message") or data.get("rule")),
                energy_j=0.0,
                excess_energy_j=0.0,
                share=0.0,
                source=FindingSource(file=str(case.slow_path), line=int(data["line"]), code=str(data.get("code", ""))),
                potential=True,  # static: nothing ran
            )
        )
    return StepResult("ok", f"{len(rules)} rules", tuple(sort_findings(findings)))


def fix_verify(case: Case, options: EvalOptions) -> StepResult:
    if not _module_exists("magneton.fix.verify"):
        return not_available("magneton fix --verify is not in this build (magneton.fix.verify)")
    return not_available("magneton.fix.verify has no public entry point this evaluation knows yet")


__all__ = [
    "STEPS",
    "STEP_TITLES",
    "EvalOptions",
    "StepResult",
    "analyze_fast",
    "analyze_slow",
    "as_findings",
    "diff_pair",
    "fix_verify",
    "lint_slow",
    "not_available",
    "peerless_detectors",
]
