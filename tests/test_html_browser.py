"""The HTML report in a real headless browser (Debian's chromium); skipped where no Chromium is installed.

`just browser-test` runs the same checks on a real analysis too and takes the README's screenshot.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_check import check_page, find_browser
from report_samples import sample_diff_report, sample_engine_diff_report, sample_report

from magneton.report.html import format_energy, write_html

BROWSER = find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (apt-get install -y chromium)")


@pytest.mark.parametrize(
    "name, report",
    [
        ("analyze", sample_report(layers=4, phases=True)),
        ("diff", sample_diff_report()),
        ("diff", sample_engine_diff_report()),
    ],
)
def test_report_renders_without_errors(tmp_path: Path, name: str, report: dict) -> None:
    assert BROWSER is not None
    path = tmp_path / "report.html"
    write_html(path, report)
    check = check_page(BROWSER, path, findings=len(report["findings"]))
    assert check.problems == []
    assert check.self_test["boxes"] >= 3  # the icicle drew through the DOM
    assert check.self_test["unfolded_boxes"] > check.self_test["boxes"]  # h.* unfolds into h.0 ... h.3
    assert {"finding-0", "icicle-svg", "op-table"} <= check.ids
    if name == "diff":
        assert {"regions-table", "waterfall", "region-2"} <= check.ids
    else:
        assert "phase-table" in check.ids


def test_checker_sees_script_errors_and_missing_findings(tmp_path: Path) -> None:
    assert BROWSER is not None
    path = tmp_path / "broken.html"
    write_html(path, sample_report(layers=1))
    page = path.read_text(encoding="utf-8")
    path.write_text(page.replace('"use strict";', '"use strict"; undefinedFunction();', 1), encoding="utf-8")
    check = check_page(BROWSER, path, findings=5)
    problems = " ".join(check.problems)
    assert "undefinedFunction" in problems  # the uncaught error reached the console
    assert "icicle drew 0 boxes" in problems
    assert "2 findings listed, expected 5" in problems


def test_numbers_in_the_chart_match_pythons_formatting(tmp_path: Path) -> None:
    assert BROWSER is not None
    report = sample_report(layers=1)
    scale = 0.22 / sum(node["energy_j"] for node in report["nodes"])  # 220 mJ: a trailing zero to keep
    for node in report["nodes"]:
        node["energy_j"] *= scale
    path = tmp_path / "r.html"
    write_html(path, report)
    check = check_page(BROWSER, path, findings=len(report["findings"]))
    assert check.problems == []
    assert check.self_test["root_label"].startswith(f"all operators — {format_energy(0.22)} (100.0%)")
