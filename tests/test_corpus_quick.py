"""The quick subset end to end: validate (outputs, energy) and eval through the CLI, as CI runs it.

Each detector step either runs and must detect the expected waste, or reports
itself not available with a reason; nothing in between is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magneton.cli import main
from magneton.corpus.case import load_corpus
from magneton.corpus.validate import ValidateOptions, validate_cases

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_cases():  # type: ignore[no-untyped-def]
    corpus = load_corpus(CORPUS, quick=True)
    assert corpus.errors == ()
    assert 2 <= len(corpus.cases) <= 5
    return corpus.cases


def test_quick_cases_validate(quick_cases) -> None:  # type: ignore[no-untyped-def]
    # Outputs and loading only: energy ratios are measured by `magneton corpus validate`, never asserted in tests.
    results = validate_cases(quick_cases, ValidateOptions(measure=False))
    for result in results:
        assert result.status == "ok", (result.case_id, result.reason, result.checks)
        assert result.max_relative_difference is not None and result.max_relative_difference <= 0.01


def test_quick_eval_end_to_end(tmp_path: Path, quick_cases) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "eval.json"
    code = main(["corpus", "eval", "--root", str(CORPUS), "--quick", "--trials", "4", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "magneton.corpus-eval/1"
    assert "recall_at_1" in data and "recall_at_3" in data
    assert {c["case"] for c in data["per_case"]} == {c.id for c in quick_cases}
    for case in data["per_case"]:
        for name, step in case["steps"].items():
            allowed = ("ok", "not-available", "skipped") if name == "fix" else ("ok", "not-available")
            assert step["status"] in allowed, (case["case"], name, step)
            if step["status"] == "not-available":
                assert step["detail"], (case["case"], name)
        # Real detections: every detector that ran must find the waste of these clear-cut cases.
        if case["steps"]["lint"]["status"] == "ok":
            assert case["lint"]["hit"], case
        if case["steps"]["analyze"]["status"] == "ok":
            assert case["analyze"]["rank"] is not None and case["analyze"]["rank"] <= 3, case
        if case["steps"]["diff"]["status"] == "ok" and case["diff"]["rank"] is not None:
            # Whether a 10-20% gap clears the threshold with confidence in 4 trials depends on the machine's
            # noise: diff recall is `just corpus`'s figure. A waste region it does report must be the right one.
            assert case["diff"]["rank"] == 1 and case["diff"]["on_expected_line"], case
        if case["steps"]["fast"]["status"] == "ok":
            assert case["fast"]["false_positives"] == [], case


def test_validate_reports_a_broken_case_and_goes_on(tmp_path: Path) -> None:
    good = CORPUS / "pytorch-141210-addmm"
    root = tmp_path / "corpus"
    (root / good.name).mkdir(parents=True)
    for name in ("slow.py", "fast.py", "case.toml"):
        (root / good.name / name).write_text((good / name).read_text())
    broken = root / "broken-case"
    broken.mkdir()
    (broken / "case.toml").write_text('id = "broken-case"\ntitle = 3\n')
    out = tmp_path / "validate.json"
    code = main(["corpus", "validate", "--root", str(root), "--no-measure", "--json", str(out)])
    assert code == 2
    data = json.loads(out.read_text())
    assert [r["status"] for r in data["results"]] == ["ok"]
    assert len(data["errors"]) == 1 and "broken-case" in data["errors"][0] and "title" in data["errors"][0]
