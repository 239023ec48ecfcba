"""``magneton diff --html`` (and ``analyze --peer --html``): the diff engine's real report as a page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_html_report import parse

PAIRS = Path(__file__).parent / "workloads" / "diff_pairs.py"


def _trace(path: Path) -> Path:
    """A replay trace where side A (addmm written as mm + add) costs 1.3x side B in its one region."""
    energies = {
        "diff.A.forward": (1.3e-3, 1e-4),
        "diff.B.forward": (1.0e-3, 1e-4),
        "diff.A.r0": (1.2e-3, 1e-4),
        "diff.B.r0": (0.9e-3, 1e-4),
    }
    measurements = {
        key: [{"energy_j": e * f, "time_s": t * f} for f in (1.0, 1.01, 0.99)] for key, (e, t) in energies.items()
    }
    trace = {
        "schema": "magneton.trace/1",
        "backend": {"name": "rapl", "provenance": "measured", "sensor": "test trace"},
        "idle_power_w": 0.0,
        "measurements": measurements,
    }
    path.write_text(json.dumps(trace))
    return path


@pytest.mark.slow
def test_diff_writes_an_html_page_of_its_regions(tmp_path: Path, run_cli: Any) -> None:
    common = [
        "--backend",
        "replay",
        "--trace",
        str(_trace(tmp_path / "t.json")),
        "--trials",
        "3",
        "--no-knobs",
        "--no-op-split",
    ]
    page_path, json_path = tmp_path / "diff.html", tmp_path / "diff.json"
    result = run_cli(
        "diff",
        f"{PAIRS}:addmm_slow",
        f"{PAIRS}:addmm_fast",
        *common,
        "--html",
        str(page_path),
        "--json",
        str(json_path),
    )
    assert result.returncode == 1, result.stderr
    assert f"HTML report written to {page_path}" in result.stdout
    report = json.loads(json_path.read_text())
    page_text = page_path.read_text(encoding="utf-8")
    page = parse(page_text)
    assert {"diff", "diff-summary", "regions-table", "region-0", "waterfall", "finding-0"} <= page.ids
    assert "verdict-waste" in page_text
    for region in report["regions"]:  # every region's operators, from the engine's per-operator split
        for entry in region["a_split"] + region["b_split"]:
            assert entry["op"] in page_text
    assert "icicle" not in page.ids  # --no-op-split: no per-operator energies to chart
    peer_page = tmp_path / "peer.html"
    peer = run_cli(
        "analyze", f"{PAIRS}:addmm_slow", "--peer", f"{PAIRS}:addmm_fast", *common, "--quiet", "--html", str(peer_page)
    )
    assert peer.returncode == 1, peer.stderr
    assert 'id="regions-table"' in peer_page.read_text(encoding="utf-8")
