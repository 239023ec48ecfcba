"""Golden files for `magneton lint`: terminal text, JSON and SARIF over tests/data/lint.

Regenerate with `just golden-lint` (never edit the golden files by hand).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("MAGNETON_UPDATE_GOLDEN") == "1"


def _lint(*extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "magneton", "lint", "tests/data/lint", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} missing: run `just golden-lint`"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file; run `just golden-lint`"


def test_terminal_output_matches_golden() -> None:
    run = _lint()
    assert run.returncode == 2  # broken.py does not parse; every other file is still linted
    _check("lint.txt", run.stdout)


def test_json_matches_golden() -> None:
    run = _lint("--json")
    assert run.returncode == 2
    payload = json.loads(run.stdout)
    assert payload["schema"] == "magneton.lint/1"
    assert any("broken.py" in error for error in payload["errors"])
    _check("lint.json", json.dumps(payload, indent=2) + "\n")


def test_sarif_matches_golden(tmp_path: Path) -> None:
    out = tmp_path / "lint.sarif"
    run = _lint("--sarif", str(out), "--quiet")
    assert run.returncode == 2
    sarif = json.loads(out.read_text(encoding="utf-8"))
    # Machine-specific: the absolute base URI of the sources.
    sarif["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"] = "file:///SRCROOT/"
    _check("lint.sarif", json.dumps(sarif, indent=2) + "\n")


def test_sarif_is_well_formed_2_1_0(tmp_path: Path) -> None:
    out = tmp_path / "lint.sarif"
    _lint("--sarif", str(out), "--quiet")
    sarif = json.loads(out.read_text(encoding="utf-8"))
    assert sarif["version"] == "2.1.0" and "sarif-2.1.0" in sarif["$schema"]
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert all({"id", "name", "shortDescription", "fullDescription", "help"} <= set(r) for r in rules)
    assert run["results"], "the sample has findings"
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert not result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("/")
    assert any("fixes" in result for result in run["results"])
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert run["invocations"][0]["executionSuccessful"] is False
    assert any("broken.py" in n["message"]["text"] for n in notes)


@pytest.mark.skipif(UPDATE, reason="regenerating")
def test_lint_never_runs_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    target = tmp_path / "side_effect.py"
    target.write_text(f"import torch\nopen({str(marker)!r}, 'w').write('x')\ny = (x != 0).sum()\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "magneton", "lint", str(target)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1 and "MAG117" in run.stdout
    assert not marker.exists()


def test_clean_file_exits_zero() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "magneton", "lint", "tests/data/lint/clean.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 findings" in run.stdout
