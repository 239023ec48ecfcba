"""The findings block of the terminal report says each figure's provenance from the finding itself."""

from __future__ import annotations

from magneton.findings import Finding, FindingSource
from magneton.report.findings_terminal import findings_text


def _finding(**overrides: object) -> Finding:
    fields: dict[str, object] = {
        "kind": "rule",
        "rule": "MAG101",
        "category": "API misuse",
        "title": "softmax then matmul",
        "energy_j": 2.0,
        "excess_energy_j": 1.5,
        "share": 0.25,
        "source": FindingSource(file="model.py", line=12, code="y = [bold]x[/bold]"),
        "excess_provenance": "estimated, upper bound: all energy of the matched operators",
    }
    fields.update(overrides)
    return Finding(**fields)  # type: ignore[arg-type]


def test_each_excess_says_its_own_provenance() -> None:
    rule = _finding()
    knob = _finding(kind="anomaly", rule=None, title="malloc re-faults", source=None, excess_provenance="measured")
    text = findings_text([rule, knob]).plain
    rule_line, knob_line = (line for line in text.splitlines() if "(25.0%" in line)
    assert "MAG101" in rule_line and "upper bound: all energy of the matched operators" in rule_line
    assert "anomaly" in knob_line and "measured)" in knob_line and "upper bound" not in knob_line
    assert "at model.py:12  y = [bold]x[/bold]" in text  # user code printed as it is, not as markup
    assert "(no source location)" in text


def test_potential_findings_and_call_sites() -> None:
    site = FindingSource(file="train.py", line=3, code="model(x)")
    text = findings_text([_finding(potential=True, call_site=site, suggestion="use sdpa")]).plain
    assert "[potential: these lines did not run]" in text and "upper bound" not in text
    assert "called from train.py:3  model(x)" in text and "instead: use sdpa" in text


def test_only_the_top_findings_are_listed() -> None:
    text = findings_text([_finding(title=f"t{i}") for i in range(4)], top=2).plain
    assert "Findings (4)" in text and "t1" in text and "t2" not in text and "and 2 more" in text
    assert findings_text([]).plain == ""
