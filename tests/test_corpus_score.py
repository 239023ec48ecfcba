"""Scoring on synthetic detector results: ranks, localisation, false positives, per-rule precision/recall."""

from __future__ import annotations

from pathlib import Path

import pytest

from magneton.corpus.case import (
    Case,
    DeviceRequirement,
    Expected,
    Measured,
    Reference,
)
from magneton.corpus.detectors import StepResult, as_findings
from magneton.corpus.score import CaseRun, case_json, detect, score_case, summarize, summary_json
from magneton.findings import Finding, FindingSource


def make_case(tmp_path: Path, name: str, rules: tuple[str, ...] = ("MAG120",), lines: tuple[int, ...] = (14,)) -> Case:
    folder = tmp_path / name
    folder.mkdir()
    return Case(
        id=name,
        title=name,
        category="API misuse",
        origin="known",
        folder=folder,
        reference=Reference("PyTorch", "https://example.org"),
        expected=Expected(rules=rules, lines=lines),
        device=DeviceRequirement(),
        measured=Measured(ratio=1.3),
    )


def finding(
    file: Path | str,
    line: int,
    excess: float,
    rule: str | None = None,
    kind: str = "anomaly",
    share: float = 0.1,
    call_site: tuple[Path, int] | None = None,
) -> Finding:
    return Finding(
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        category=None,
        title=f"{kind} at {line}",
        energy_j=excess * 2,
        excess_energy_j=excess,
        share=share,
        source=FindingSource(file=str(file), line=line),
        call_site=FindingSource(file=str(call_site[0]), line=call_site[1]) if call_site else None,
    )


def ok(*findings: Finding, **extras: object) -> StepResult:
    return StepResult("ok", findings=as_findings(findings), extras=extras)


def test_rank_follows_excess_energy_and_line_match(tmp_path: Path) -> None:
    case = make_case(tmp_path, "c")
    slow = case.slow_path
    step = ok(finding(slow, 3, 5.0), finding(slow, 14, 2.0), finding(slow, 20, 1.0))
    d = detect(step, case)
    assert (d.rank, d.on_line, d.rule_ok, d.line) == (2, True, False, 14)
    assert not d.hit_at(1) and d.hit_at(3)


def test_rule_alone_matches_but_is_not_localised(tmp_path: Path) -> None:
    case = make_case(tmp_path, "c")
    d = detect(ok(finding(case.slow_path, 99, 1.0, rule="MAG120", kind="rule")), case)
    assert d.rank == 1 and d.rule_ok and not d.on_line


def test_other_file_and_potential_findings(tmp_path: Path) -> None:
    case = make_case(tmp_path, "c")
    library = tmp_path / "activations.py"
    # A library line that the user's expected line called into counts through its call site.
    via_call_site = finding(library, 57, 3.0, call_site=(case.slow_path, 14))
    assert detect(ok(via_call_site), case).on_line
    # Same line number in another file does not count.
    assert detect(ok(finding(library, 14, 3.0)), case).rank is None
    # A potential (never-ran) finding ranks after every measured one.
    potential = Finding(
        kind="rule",
        rule="MAG999",
        category=None,
        title="p",
        energy_j=0.0,
        excess_energy_j=0.0,
        share=0.0,
        source=FindingSource(file=str(case.slow_path), line=14),
        potential=True,
    )
    d = detect(ok(potential, finding(case.slow_path, 1, 0.5), finding(case.slow_path, 2, 0.4)), case)
    assert d.rank == 3


def test_not_available_is_not_a_miss(tmp_path: Path) -> None:
    case = make_case(tmp_path, "c")
    run = CaseRun(case, {"analyze": StepResult("not-available", "no detector"), "diff": ok()})
    score = score_case(run)
    assert score.analyze.status == "not-available"
    assert score.diff.status == "ok" and score.diff.rank is None
    summary = summarize([case], [score])
    assert summary.analyze.evaluated == 0 and summary.analyze.at_3 is None
    assert summary.diff.evaluated == 1 and summary.diff.at_3 == 0.0
    assert summary.rules == ()  # no rule-reporting step ran: no rule is scored as missed


def test_summary_recall_false_positives_fixes_and_rules(tmp_path: Path) -> None:
    a = make_case(tmp_path, "a", rules=("MAG120",), lines=(14,))
    b = make_case(tmp_path, "b", rules=("MAG113",), lines=(5,))
    c = make_case(tmp_path, "c", rules=("MAG115",), lines=(7,))
    runs = [
        CaseRun(
            a,
            {
                "analyze": ok(finding(a.slow_path, 14, 2.0, rule="MAG120", kind="rule")),
                "diff": ok(finding(a.slow_path, 14, 0.8, kind="diff")),
                "fast": ok(finding(a.fast_path, 3, 0.1, share=0.02)),  # below 5%: not a false positive
                "lint": ok(finding(a.slow_path, 14, 0.0, rule="MAG120", kind="rule")),
                "fix": ok(verified=True, saving_j=0.5, saving_share=0.2),
            },
            measured_gap_j=1.0,
        ),
        CaseRun(
            b,
            {
                "analyze": ok(finding(b.slow_path, 1, 3.0), finding(b.slow_path, 2, 2.0), finding(b.slow_path, 5, 1.0)),
                "diff": ok(finding(b.slow_path, 9, 0.4, kind="diff")),
                "fast": ok(finding(b.fast_path, 3, 0.1, share=0.3, rule="MAG120", kind="rule")),
                "lint": ok(),
                "fix": ok(verified=False, saving_j=0.0, saving_share=0.0),
            },
            measured_gap_j=0.2,
        ),
        CaseRun(c, {}, skipped="needs a CUDA GPU"),
    ]
    scores = [score_case(r) for r in runs]
    s = summarize([a, b, c], scores)
    assert (s.cases, s.skipped) == (3, 1)
    assert (s.analyze.evaluated, s.analyze.at_1, s.analyze.at_3, s.analyze.localised) == (2, 0.5, 1.0, 1.0)
    assert (s.diff.at_1, s.diff.at_3) == (0.5, 0.5)
    assert (s.false_positives, s.false_positive_cases, s.fast_evaluated) == (1, 1, 2)
    assert (s.lint_hits, s.lint_evaluated) == (1, 2)
    assert (s.gap_close, s.gap_evaluated) == (1, 2)  # 0.8 J vs 1.0 J is close; 0.4 J vs 0.2 J is not
    assert (s.fixes_verified, s.fixes_attempted) == (1, 2)
    assert s.verified_saving_j == pytest.approx(0.5)
    rules = {r.rule: r for r in s.rules}
    # MAG120 fired on a's slow variant (expected: hit) and on b's fast variant (b does not expect it: not counted).
    assert (rules["MAG120"].hits, rules["MAG120"].expected, rules["MAG120"].false_firings) == (1, 1, 0)
    assert rules["MAG120"].precision == 1.0 and rules["MAG120"].recall == 1.0
    assert rules["MAG113"].recall == 0.0 and rules["MAG113"].precision is None
    assert "MAG115" not in rules  # its only case was skipped
    data = summary_json(s)
    assert data["recall_at_1"] == 0.5 and data["recall_at_3"] == 1.0
    assert case_json(scores[2])["skipped"] == "needs a CUDA GPU"


def test_rule_firing_on_its_own_fast_variant_is_false(tmp_path: Path) -> None:
    a = make_case(tmp_path, "a", rules=("MAG120",))
    b = make_case(tmp_path, "b", rules=("MAG113",))
    runs = [
        CaseRun(
            a,
            {
                "lint": ok(finding(a.slow_path, 14, 0, rule="MAG120")),
                "fast": ok(finding(a.fast_path, 1, 0, rule="MAG120")),
            },
        ),
        CaseRun(b, {"lint": ok(finding(b.slow_path, 1, 0, rule="MAG120"))}),
    ]
    rules = {r.rule: r for r in summarize([a, b], [score_case(r) for r in runs]).rules}
    assert (rules["MAG120"].hits, rules["MAG120"].false_firings) == (1, 2)
    assert rules["MAG120"].precision == pytest.approx(1 / 3)


def test_findings_from_report_dicts(tmp_path: Path) -> None:
    raw = [
        {
            "kind": "rule",
            "rule": "MAG113",
            "category": "API misuse",
            "title": "sort then slice",
            "energy_j": 1.0,
            "excess_energy_j": 0.5,
            "share": 0.3,
            "source": {"file": "x.py", "line": 3, "code": "y"},
        },
        finding(tmp_path / "x.py", 4, 2.0),
    ]
    findings = as_findings(raw)
    assert [f.excess_energy_j for f in findings] == [2.0, 0.5]
