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
    # Interleaved trials of the diff's region replay, which decides the verdict: with 9 the 95% interval of the
    # paired per-trial ratios starts at the second-smallest, so one trial disturbed by other load cannot turn
    # a waste region into "same" on its own (with 7 it starts at the smallest); a replay trial costs little.
    diff_trials: int = 9
    # Interleaved trials of fix --verify (a trial is two short windows): with 15 the saving's 95% interval starts
    # at the fourth-smallest paired saving, so a few trials disturbed by other load cannot un-verify a fix.
    fix_trials: int = 15
    # Run each case in a fresh process, as its user would run it: in one long process the allocator state,
    # caches and globals the cases before it left decide part of what it measures, and `--case ID` alone
    # would not give what the full run gives.
    isolate: bool = True


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
    from magneton.diff.settings import apply_settings, record_settings
    from magneton.workload import load_target

    detectors = peerless_detectors()
    if not detectors:
        return not_available("no peer-less detector in this build (magneton.expected, magneton.rules)")
    before = record_settings()
    try:
        workload = load_target(target)
        report = magneton.analyze(
            workload.fn,
            workload.args,
            workload.kwargs,
            target=target,
            backend=options.backend,
            trials=options.trials,
            # Corpus cases are tiny by design: framework overhead dominates them, and the allocator knob is
            # about the process, not the catalogued inefficiency; neither is what a case scores.
            overhead=False,
            allocator_check=False,
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
    if not _module_exists("magneton.diff.engine"):
        return not_available("magneton diff is not in this build (magneton.diff.engine)")
    from magneton.diff.engine import DiffOptions, diff_targets
    from magneton.diff.report import build_diff_report
    from magneton.diff.settings import apply_settings, record_settings

    before = record_settings()
    try:
        diff_options = DiffOptions(backend=options.backend, trials=options.trials, replay_trials=options.diff_trials)
        result = diff_targets(case.target("slow"), case.target("fast"), diff_options)
        report = build_diff_report(result)
    finally:
        apply_settings(before)
    sides = list(report.diff.sides) if report.diff is not None else []
    gap = sides[0].total_energy_j - sides[1].total_energy_j if len(sides) == 2 else None
    waste = [f for f in report.findings if f.kind == "diff"]
    return StepResult(
        "ok",
        f"{len(report.regions or [])} regions, {len(waste)} waste",
        as_findings(report.findings),
        sides[0].total_energy_j if sides else None,
        {"measured_gap_j": gap},
    )


def lint_slow(case: Case) -> StepResult:
    if not _module_exists("magneton.rules.lint"):
        return not_available("magneton lint is not in this build (magneton.rules)")
    from magneton.rules.discovery import load_rules
    from magneton.rules.lint import lint_file

    rules = load_rules().select()
    result = lint_file(str(case.slow_path), rules)
    if result.error:
        return StepResult("error", result.error)
    findings = [
        Finding(
            kind="rule",
            rule=match.rule,
            category=match.category,
            title=f"{match.rule} {match.name}: {match.message}",
            energy_j=0.0,
            excess_energy_j=0.0,
            share=0.0,
            source=FindingSource(file=str(case.slow_path), line=match.line, code=match.code, end_line=match.end_line),
            suggestion=match.suggestion,
            potential=True,  # static: nothing ran
        )
        for match in result.matches
    ]
    return StepResult("ok", f"{len(rules)} rules", tuple(sort_findings(findings)))


def fix_verify(case: Case, options: EvalOptions) -> StepResult:
    if not _module_exists("magneton.fix.verify"):
        return not_available("magneton fix --verify is not in this build (magneton.fix.verify)")
    from magneton.diff.settings import apply_settings, record_settings
    from magneton.fix.apply import fix_file
    from magneton.fix.verify import verify_fix
    from magneton.rules.discovery import load_rules

    fixed = fix_file(str(case.slow_path), load_rules().select())
    if fixed.error:
        return StepResult("error", fixed.error)
    if not fixed.changed:
        return StepResult("skipped", "no fixer of the catalog applies to slow.py")
    before = record_settings()
    try:
        verification = verify_fix(
            case.target("slow"), case.slow_path, fixed.fixed, backend=options.backend, trials=options.fix_trials
        )
    finally:
        apply_settings(before)
    rules = sorted({applied.rule for applied in fixed.applied})
    return StepResult(
        "ok",
        f"{', '.join(rules)}: {verification.verdict()}",
        extras={
            "rules": rules,
            "verified": verification.verified,
            "saving_j": verification.saving_j.median,
            "saving_share": verification.saving_fraction,
            "outputs_match": verification.outputs_match,
            "max_relative_difference": verification.max_relative_difference,
            "provenance": verification.provenance,
        },
    )


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
