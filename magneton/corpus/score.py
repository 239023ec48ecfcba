"""Scoring the detectors on the corpus: pure functions over cases and step results.

Definitions (also in corpus/README.md):

- A finding *matches* a case when it points at one of the case's expected lines
  in ``slow.py`` (its source line, or the user call site of library code), or
  carries one of the case's expected rule ids.
- recall@k (for ``analyze`` and for ``diff``): the share of evaluated cases with a
  matching finding among the k first findings (most excess energy first,
  potential findings last). Cases whose step is not available, skipped or
  failed are not in the denominator; their count is reported beside it.
- localisation accuracy: among cases matched within the top 3, the share whose
  matching finding is on an expected line.
- false positives: findings on a *fast* variant that hold >= 5% of its energy.
- per rule: precision = hits / all firings of the rule on the corpus (slow
  variants of cases that do not expect it, and fast variants of those that do,
  count as false), recall = cases expecting the rule where it fired on the slow
  variant / cases expecting it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magneton.corpus.case import Case
from magneton.corpus.detectors import StepResult
from magneton.findings import Finding, FindingSource

FALSE_POSITIVE_SHARE = 0.05
GAP_TOLERANCE = 0.5  # a diff's excess is "close" to the measured gap within +-50%


@dataclass(frozen=True)
class CaseRun:
    """Everything the detectors returned for one case."""

    case: Case
    steps: Mapping[str, StepResult]  # by step name (detectors.STEPS)
    skipped: str = ""  # why the whole case did not run here (device, extras)
    measured_gap_j: float | None = None  # slow - fast joules per call, from the diff's own totals


@dataclass(frozen=True)
class Detection:
    """How one detector's ranked findings fared on one case."""

    status: str  # the step's status; scores are only meaningful when "ok"
    rank: int | None = None  # 1-based rank of the first matching finding; None: no match
    on_line: bool = False  # that finding is on an expected line
    rule_ok: bool = False  # that finding carries an expected rule
    rule: str | None = None
    line: int | None = None
    findings: int = 0

    def hit_at(self, k: int) -> bool:
        return self.status == "ok" and self.rank is not None and self.rank <= k


@dataclass(frozen=True)
class CaseScore:
    case_id: str
    category: str
    skipped: str
    analyze: Detection
    diff: Detection
    diff_excess_j: float | None = None
    diff_gap_j: float | None = None
    fast_status: str = "not-available"
    false_positives: tuple[str, ...] = ()  # titles of findings >= 5% on the fast variant
    lint_status: str = "not-available"
    lint_hit: bool = False
    lint_rules: tuple[str, ...] = ()
    fix_status: str = "not-available"
    fix_verified: bool = False
    fix_saving_j: float | None = None
    fix_saving_share: float | None = None
    rules_fired_slow: frozenset[str] = frozenset()
    rules_fired_fast: frozenset[str] = frozenset()
    rules_evaluated: bool = False  # a step that reports rule ids (analyze or lint) ran on the slow variant

    @property
    def gap_close(self) -> bool | None:
        if self.diff_excess_j is None or not self.diff_gap_j:
            return None
        return abs(self.diff_excess_j - self.diff_gap_j) <= GAP_TOLERANCE * abs(self.diff_gap_j)


def _same_file(source: FindingSource | None, path: Path) -> bool:
    if source is None:
        return False
    try:
        return Path(source.file).resolve() == path.resolve()
    except OSError:
        return False


def on_expected_line(finding: Finding, case: Case) -> int | None:
    """The expected line the finding points at (its source, else its user call site), or None."""
    for source in (finding.source, finding.call_site):
        if source is not None and _same_file(source, case.slow_path) and source.line in case.expected.lines:
            return source.line
        if source is not None and _same_file(source, case.slow_path) and source.end_line:
            overlap = set(range(source.line, source.end_line + 1)) & set(case.expected.lines)
            if overlap:
                return min(overlap)
    return None


def matches(finding: Finding, case: Case) -> bool:
    return on_expected_line(finding, case) is not None or (finding.rule or "") in case.expected.rules


def detect(step: StepResult | None, case: Case) -> Detection:
    if step is None:
        return Detection("not-available")
    if not step.ok:
        return Detection(step.status, findings=len(step.findings))
    for rank, finding in enumerate(step.findings, start=1):
        if matches(finding, case):
            line = on_expected_line(finding, case)
            return Detection(
                "ok",
                rank=rank,
                on_line=line is not None,
                rule_ok=(finding.rule or "") in case.expected.rules,
                rule=finding.rule,
                line=line if line is not None else (finding.source.line if finding.source else None),
                findings=len(step.findings),
            )
    return Detection("ok", findings=len(step.findings))


def _fired(step: StepResult | None) -> frozenset[str]:
    if step is None or not step.ok:
        return frozenset()
    return frozenset(f.rule for f in step.findings if f.rule)


def score_case(run: CaseRun) -> CaseScore:
    case = run.case
    steps = run.steps
    if run.skipped:
        return CaseScore(case.id, case.category, run.skipped, Detection("skipped"), Detection("skipped"))
    diff_step = steps.get("diff")
    diff_detection = detect(diff_step, case)
    diff_excess = None
    if diff_step is not None and diff_step.ok:
        waste = [f for f in diff_step.findings if f.kind == "diff"]
        diff_excess = sum(f.excess_energy_j for f in waste) if waste else 0.0
    fast = steps.get("fast")
    false_positives: tuple[str, ...] = ()
    if fast is not None and fast.ok:
        false_positives = tuple(f.title for f in fast.findings if not f.potential and f.share >= FALSE_POSITIVE_SHARE)
    lint = steps.get("lint")
    lint_hit = bool(lint and lint.ok and any(on_expected_line(f, case) is not None for f in lint.findings))
    fix = steps.get("fix")
    fix_extras = fix.extras if fix is not None and fix.ok else {}
    return CaseScore(
        case_id=case.id,
        category=case.category,
        skipped="",
        analyze=detect(steps.get("analyze"), case),
        diff=diff_detection,
        diff_excess_j=diff_excess,
        diff_gap_j=run.measured_gap_j,
        fast_status=fast.status if fast is not None else "not-available",
        false_positives=false_positives,
        lint_status=lint.status if lint is not None else "not-available",
        lint_hit=lint_hit,
        lint_rules=tuple(sorted(_fired(lint))),
        fix_status=fix.status if fix is not None else "not-available",
        fix_verified=bool(fix_extras.get("verified", False)),
        fix_saving_j=fix_extras.get("saving_j"),
        fix_saving_share=fix_extras.get("saving_share"),
        rules_fired_slow=_fired(steps.get("analyze")) | _fired(lint),
        rules_fired_fast=_fired(fast),
        rules_evaluated=any(steps.get(name) is not None and steps[name].ok for name in ("analyze", "lint")),
    )


@dataclass(frozen=True)
class Recall:
    evaluated: int  # cases where the step ran
    not_evaluated: int  # available in principle but not run here: not available, skipped, error
    at_1: float | None  # None when nothing was evaluated
    at_3: float | None
    localised: float | None  # among top-3 matches, share on an expected line

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluated": self.evaluated,
            "not_evaluated": self.not_evaluated,
            "recall_at_1": self.at_1,
            "recall_at_3": self.at_3,
            "localisation_accuracy": self.localised,
        }


def recall(detections: Sequence[Detection]) -> Recall:
    ran = [d for d in detections if d.status == "ok"]
    if not ran:
        return Recall(0, len(detections), None, None, None)
    top3 = [d for d in ran if d.hit_at(3)]
    return Recall(
        evaluated=len(ran),
        not_evaluated=len(detections) - len(ran),
        at_1=sum(d.hit_at(1) for d in ran) / len(ran),
        at_3=len(top3) / len(ran),
        localised=sum(d.on_line for d in top3) / len(top3) if top3 else None,
    )


@dataclass(frozen=True)
class RuleScore:
    rule: str
    expected: int  # cases (run here) whose slow variant should trigger it
    hits: int  # of those, cases where it fired on the slow variant
    false_firings: int  # firings on slow variants not expecting it, and on fast variants of those expecting it

    @property
    def precision(self) -> float | None:
        fired = self.hits + self.false_firings
        return self.hits / fired if fired else None

    @property
    def recall(self) -> float | None:
        return self.hits / self.expected if self.expected else None

    @property
    def in_catalog(self) -> bool:
        """A catalog id (MAG + 3 digits); other names are expected patterns no catalog rule covers yet."""
        return re.fullmatch(r"MAG\d{3}", self.rule) is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "in_catalog": self.in_catalog,
            "expected": self.expected,
            "hits": self.hits,
            "false_firings": self.false_firings,
            "precision": self.precision,
            "recall": self.recall,
        }


def rule_scores(cases: Sequence[Case], scores: Sequence[CaseScore]) -> list[RuleScore]:
    by_id = {c.id: c for c in cases}
    ran = [s for s in scores if not s.skipped and s.rules_evaluated]
    rules = sorted(
        {r for s in ran for r in by_id[s.case_id].expected.rules} | {r for s in ran for r in s.rules_fired_slow}
    )
    table = []
    for rule in rules:
        expecting = [s for s in ran if rule in by_id[s.case_id].expected.rules]
        hits = sum(rule in s.rules_fired_slow for s in expecting)
        false = sum(rule in s.rules_fired_slow for s in ran if rule not in by_id[s.case_id].expected.rules)
        false += sum(rule in s.rules_fired_fast for s in expecting)
        table.append(RuleScore(rule, len(expecting), hits, false))
    return table


@dataclass(frozen=True)
class Summary:
    cases: int
    skipped: int
    analyze: Recall
    diff: Recall
    lint_evaluated: int
    lint_hits: int
    fast_evaluated: int
    false_positive_cases: int  # fast variants with at least one finding >= 5% of energy
    false_positives: int
    gap_close: int  # diff excess within +-50% of the measured gap
    gap_evaluated: int
    fixes_attempted: int
    fixes_verified: int
    verified_saving_j: float
    rules: tuple[RuleScore, ...] = field(default=())


def summarize(cases: Sequence[Case], scores: Sequence[CaseScore]) -> Summary:
    ran = [s for s in scores if not s.skipped]
    fast = [s for s in ran if s.fast_status == "ok"]
    lint = [s for s in ran if s.lint_status == "ok"]
    gaps = [s for s in ran if s.gap_close is not None]
    fixes = [s for s in ran if s.fix_status == "ok"]
    return Summary(
        cases=len(scores),
        skipped=len(scores) - len(ran),
        analyze=recall([s.analyze for s in ran]),
        diff=recall([s.diff for s in ran]),
        lint_evaluated=len(lint),
        lint_hits=sum(s.lint_hit for s in lint),
        fast_evaluated=len(fast),
        false_positive_cases=sum(bool(s.false_positives) for s in fast),
        false_positives=sum(len(s.false_positives) for s in fast),
        gap_close=sum(bool(s.gap_close) for s in gaps),
        gap_evaluated=len(gaps),
        fixes_attempted=len(fixes),
        fixes_verified=sum(s.fix_verified for s in fixes),
        verified_saving_j=sum(s.fix_saving_j or 0.0 for s in fixes if s.fix_verified),
        rules=tuple(rule_scores(cases, scores)),
    )


def _detection_json(d: Detection) -> dict[str, Any]:
    return {
        "status": d.status,
        "rank": d.rank,
        "on_expected_line": d.on_line,
        "rule_correct": d.rule_ok,
        "rule": d.rule,
        "line": d.line,
        "findings": d.findings,
    }


def case_json(score: CaseScore) -> dict[str, Any]:
    return {
        "case": score.case_id,
        "category": score.category,
        "skipped": score.skipped or None,
        "analyze": _detection_json(score.analyze),
        "diff": {
            **_detection_json(score.diff),
            "excess_energy_j": score.diff_excess_j,
            "measured_gap_j": score.diff_gap_j,
            "excess_close_to_gap": score.gap_close,
        },
        "fast": {"status": score.fast_status, "false_positives": list(score.false_positives)},
        "lint": {"status": score.lint_status, "hit": score.lint_hit, "rules": list(score.lint_rules)},
        "fix": {
            "status": score.fix_status,
            "verified": score.fix_verified,
            "saving_j": score.fix_saving_j,
            "saving_share": score.fix_saving_share,
        },
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    """The overall figures; ``recall_at_1``/``recall_at_3`` at the top level are analyze's (no peer)."""
    return {
        "recall_at_1": summary.analyze.at_1,
        "recall_at_3": summary.analyze.at_3,
        "cases": summary.cases,
        "skipped": summary.skipped,
        "analyze": summary.analyze.to_json(),
        "diff": summary.diff.to_json(),
        "lint": {"evaluated": summary.lint_evaluated, "hits": summary.lint_hits},
        "false_positives": {
            "threshold_share": FALSE_POSITIVE_SHARE,
            "fast_variants_evaluated": summary.fast_evaluated,
            "cases_with_false_positives": summary.false_positive_cases,
            "findings": summary.false_positives,
        },
        "diff_excess_vs_gap": {"close": summary.gap_close, "evaluated": summary.gap_evaluated},
        "fixes": {
            "attempted": summary.fixes_attempted,
            "verified": summary.fixes_verified,
            "verified_saving_j": summary.verified_saving_j,
        },
        "rules": [r.to_json() for r in summary.rules],
    }


__all__ = [
    "FALSE_POSITIVE_SHARE",
    "CaseRun",
    "CaseScore",
    "Detection",
    "Recall",
    "RuleScore",
    "Summary",
    "case_json",
    "detect",
    "matches",
    "on_expected_line",
    "recall",
    "rule_scores",
    "score_case",
    "summarize",
    "summary_json",
]
