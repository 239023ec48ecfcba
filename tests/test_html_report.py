"""The HTML report: structure (element ids, sections present or absent), escaping, self-containment, size."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_samples import FILE, HOSTILE_CODE, sample_diff_report, sample_engine_diff_report, sample_report

from magneton.report.html import ReportFormatError, render_html, repr_html, script_json, write_html


class PageParser(HTMLParser):
    """Collects what the tests check: ids, script elements and their text, every attribute that fetches."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.scripts: list[dict[str, Any]] = []
        self.fetching: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._in_script: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        for name in ("src", "href", "srcset", "data", "action", "xlink:href"):
            value = attributes.get(name)
            if value is not None and not value.startswith("#"):
                self.fetching.append((tag, name, value))
        if tag == "link":
            self.fetching.append((tag, "link", str(attributes)))
        if tag == "script":
            self._in_script = {"attrs": attributes, "text": ""}
            self.scripts.append(self._in_script)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._in_script["text"] += data
        else:
            self.text.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def data_island(parser: PageParser) -> dict[str, Any]:
    islands = [s for s in parser.scripts if s["attrs"].get("id") == "magneton-data"]
    assert len(islands) == 1
    return json.loads(islands[0]["text"])


def test_script_json_is_inert_inside_a_script_element() -> None:
    value = {"code": "</script><script>alert(1)</script><!-- -->", "sep": "a\u2028b\u2029c", "amp": "&lt;"}
    text = script_json(value)
    for forbidden in ("</", "<!--", "<script", "\u2028", "\u2029", "&"):
        assert forbidden not in text
    assert json.loads(text) == value


def test_script_json_writes_non_finite_numbers_as_null() -> None:
    assert json.loads(script_json({"a": float("nan"), "b": [float("inf"), 1.5]})) == {"a": None, "b": [None, 1.5]}


def test_page_has_every_section_of_a_full_report() -> None:
    page = parse(render_html(sample_report(phases=True)))
    expected = {
        "header", "target", "backend", "total-energy", "estimate-warning", "contention-warning", "nav",
        "findings", "findings-list", "finding-0", "finding-1",
        "energy", "color-mode", "zoom-out", "icicle", "details",
        "operators", "op-filter", "op-fold", "op-table",
        "training", "phase-table", "magneton-data",
    }  # fmt: skip
    assert expected <= page.ids
    assert "diff" not in page.ids  # no regions in an analyze report
    assert "no-findings" not in page.ids


def test_optional_sections_are_left_out_when_absent() -> None:
    report = sample_report()
    report["findings"] = []
    del report["contention"]
    page = parse(render_html(report))
    assert "no-findings" in page.ids and "finding-0" not in page.ids
    assert not {"training", "diff", "contention-warning", "waterfall"} & page.ids
    assert {"icicle", "op-table"} <= page.ids


def test_page_is_self_contained() -> None:
    page_text = render_html(sample_diff_report())
    page = parse(page_text)
    assert page.fetching == []  # no src=, href= to anything but an anchor, no <link>
    assert "@import" not in page_text and "url(" not in page_text
    assert "cdn" not in page_text.lower()
    # Exactly our two scripts: the data island and the inline program, neither with a src.
    assert [s["attrs"].get("type") for s in page.scripts] == ["application/json", None]


def test_user_text_shows_as_text_never_as_markup() -> None:
    report = sample_report()
    page_text = render_html(report)
    page = parse(page_text)
    assert len(page.scripts) == 2  # the source line's <script> did not become an element
    visible = "".join(page.text)
    assert 'x = "</script><script>alert(1)</script><!-- \u2028 & <b>bold</b>"' in visible  # as text, in the finding
    assert "examples/<gpt2>.py:workload" in visible
    assert "hand-written GELU launches five kernels <where one does>" in visible
    island = data_island(page)
    assert HOSTILE_CODE in [source[3] for source in island["sources"]]


def test_provenance_banner_only_for_estimates() -> None:
    report = sample_report()
    assert "estimate-warning" in parse(render_html(report)).ids
    report["backend"]["provenance"] = "measured"
    page = parse(render_html(report))
    assert "estimate-warning" not in page.ids
    assert "MEASURED" in "".join(page.text)


text_strategy = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
    | st.sampled_from(["<", ">", "&", '"', "'", "</script>", "<!--", "<script>", "\u2028", "]]>", "</textarea>"]),
    max_size=8,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=text_strategy, title=text_strategy, path=text_strategy, module=text_strategy)
def test_arbitrary_user_text_never_breaks_the_page(code: str, title: str, path: str, module: str) -> None:
    report = sample_report(layers=1)
    report["nodes"][1]["source"] = {"file": path or "f", "line": 3, "function": title, "code": code}
    report["nodes"][1]["module_path"] = module
    report["findings"][0]["title"] = title
    report["findings"][0]["source"] = {"file": path, "line": 3, "code": code}
    report["findings"][0]["fix"] = code
    page = parse(render_html(report))
    assert [s["attrs"].get("id") for s in page.scripts] == ["magneton-data", None]
    island = data_island(page)
    assert island["nodes"][1]["m"] == module
    assert any(source[3] == code for source in island["sources"])
    assert page.fetching == []


def test_icicle_data_carries_flops_bytes_expected_and_phase() -> None:
    island = data_island(parse(render_html(sample_report(phases=True))))
    by_op = {node["op"]: node for node in reversed(island["nodes"])}  # the first node of each op
    assert by_op["aten.addmm.default"]["fl"] == 2 * 512 * 768 * 2304
    assert by_op["aten.softmax.int"]["x"] == 0.002 and by_op["aten.softmax.int"]["by"] == 12_000_000
    assert {node["ph"] for node in island["nodes"]} == {"forward", "backward", "optimizer"}
    assert island["has_expected"] is True and island["provenance"] == "estimated"
    # Non-contiguous inputs show their strides; contiguous ones do not.
    assert "float32[768,768]{stride 1,768}" in by_op["aten.addmm.default"]["in"]
    assert "float32[4,128,768];" in by_op["aten.addmm.default"]["in"]


def test_findings_show_code_excess_fix_and_verified_saving() -> None:
    page_text = render_html(sample_report())
    finding = page_text[page_text.index('id="finding-0"') : page_text.index('id="finding-1"')]
    assert "MAG101" in finding and "API misuse" in finding
    assert "excess 7 mJ" in finding
    assert 'class="add"' in finding and 'class="del"' in finding  # the fix as a coloured diff
    assert "verified by measurement" in finding and "saving_j: 6.8 mJ" in finding
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in finding
    anomaly = page_text[page_text.index('id="finding-1"') :]
    assert "[predicted]" in anomaly  # the anomaly's excess says it comes from a prediction


def test_findings_are_listed_in_report_order() -> None:
    page_text = render_html(sample_report())
    assert page_text.index("hand-written GELU") < page_text.index("softmax costs 3.0x")


def test_diff_view_aligns_regions_with_both_sides() -> None:
    report = sample_diff_report()
    page_text = render_html(report)
    page = parse(page_text)
    assert {"diff", "waterfall", "regions-table", "region-0", "region-1", "region-2", "finding-0"} <= page.ids
    assert {"icicle", "op-table"} <= page.ids  # side A's operators
    region0 = page_text[page_text.index('id="region-0"') : page_text.index('id="region-1"')]
    assert "verdict-waste" in region0 and "aten.mul.Tensor" in region0 and "aten.gelu.default" in region0
    assert "model.py:42" in region0  # each side's source lines
    assert "A/B 3.00×" in region0
    assert 'id="region-1" ' not in page_text  # ids are exact
    assert 'class="region verdict-same" id="region-1"' in page_text
    region1 = page_text[page_text.index('id="region-1"') : page_text.index('id="region-2"')]
    assert "ratio CI 0.98–1.20×" in region1 and "time A 1 ms / B 900 µs" in region1
    assert 'class="region verdict-tradeoff" id="region-2"' in page_text
    waterfall = page_text[page_text.index('id="waterfall"') : page_text.index("</svg>")]
    assert waterfall.count('class="wf-step') == 3 and "wf-total" in waterfall
    visible = "".join(page.text)
    assert "energy A" in visible and "energy B" in visible
    assert "counterpart on side B" in visible


def test_diff_with_both_sides_nodes_at_the_top_level() -> None:
    report = sample_diff_report()
    sides = report.pop("sides")
    report["nodes"] = sides[0]["nodes"] + sides[1]["nodes"]
    page_text = render_html(report)
    region0 = page_text[page_text.index('id="region-0"') : page_text.index('id="region-1"')]
    assert "aten.mul.Tensor" in region0 and "aten.gelu.default" in region0


def test_diff_without_side_nodes_still_lists_regions() -> None:
    report = sample_diff_report()
    del report["sides"]
    page = parse(render_html(report))
    assert {"diff", "region-0"} <= page.ids
    assert "icicle" not in page.ids


def test_training_view_sums_energy_per_phase_and_line() -> None:
    report = sample_report(layers=2, phases=True)
    page_text = render_html(report)
    table = page_text[page_text.index('id="phase-table"') :]
    for phase in ("forward", "backward", "optimizer"):
        assert f"phase-{phase}" in table
    forward_j = sum(n["energy_j"] for n in report["nodes"] if n["phase"] == "forward")
    from magneton.report.html import format_energy

    assert format_energy(forward_j) in table


def test_not_a_report_is_a_clear_error() -> None:
    with pytest.raises(ReportFormatError, match="neither 'nodes' nor 'regions'"):
        render_html({"schema": "magneton.report/1"})
    with pytest.raises(ReportFormatError):
        render_html(42)


def test_typed_models_render_through_msgspec() -> None:
    import msgspec

    class Tiny(msgspec.Struct):
        schema: str
        target: str
        nodes: list[dict[str, Any]]
        findings: list[dict[str, Any]]

    report = sample_report(layers=1)
    page = parse(render_html(Tiny(report["schema"], report["target"], report["nodes"], [])))
    assert {"icicle", "no-findings"} <= page.ids


def test_repr_html_wraps_the_page_in_an_iframe() -> None:
    snippet = repr_html(sample_report(layers=1))
    page = parse(snippet)
    assert page.tags == ["iframe"] and page.scripts == []
    srcdoc = snippet[snippet.index('srcdoc="') + 8 : snippet.index('" style=')]
    assert "<" not in srcdoc and '"' not in srcdoc  # the whole document is one attribute value
    import html

    assert html.unescape(srcdoc) == render_html(sample_report(layers=1))


def test_a_twelve_layer_report_stays_well_under_five_megabytes(tmp_path: Path) -> None:
    # A 12-layer GPT-2 export has ~1,000 operators; 400 blocks of this sample hold 2,000 of them.
    report = sample_report(layers=400)
    assert len(report["nodes"]) > 2000
    path = tmp_path / "big.html"
    write_html(path, report)
    assert path.stat().st_size < 5_000_000


def test_write_html_writes_the_page(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.html"
    write_html(path, sample_report(layers=1))
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_typed_provenance_objects_are_described() -> None:
    report = sample_report(layers=1)
    report["energy_provenance"] = {
        "kind": "replayed",
        "trace_path": "run<1>.json",
        "original": {"kind": "estimated", "formula": "cpu_time * w"},
        "recorded_by_magneton": False,
    }
    report["nodes"][2]["expected_provenance"] = {
        "kind": "predicted", "model": "gbr", "training_set_size": 400, "held_out_error": 0.15,
        "held_out_metric": "median absolute relative error",
    }  # fmt: skip
    page = parse(render_html(report))
    visible = "".join(page.text)
    assert "REPLAYED" in visible and "estimate-warning" in page.ids  # replayed estimates are still estimates
    assert "replayed from run<1>.json (originally estimated: cpu_time * w) — not recorded by Magneton" in visible
    assert "predicted by gbr (trained on 400 samples, held-out median absolute relative error 0.15)" in visible
    assert data_island(page)["provenance"] == "replayed"


@pytest.fixture(scope="module")
def typed_report() -> Any:
    import torch

    import magneton

    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()
    return magneton.analyze(
        model,
        torch.randn(4, 16),
        backend="estimate",
        trials=2,
        min_window_s=0.002,
        idle_s=0.01,
        target="tests:<mlp>",
        overhead=False,  # a tiny MLP is mostly framework overhead: that finding is tested in test_overhead
    )


def test_a_typed_report_renders_and_shows_in_notebooks(typed_report: Any, tmp_path: Path) -> None:
    page = parse(render_html(typed_report))
    assert {"header", "icicle", "op-table", "no-findings"} <= page.ids
    island = data_island(page)
    assert [node["op"] for node in island["nodes"]] == [node.op for node in typed_report.nodes]
    assert island["provenance"] == typed_report.energy_provenance.kind == "estimated"
    assert "tests:<mlp>" in "".join(page.text)
    snippet = typed_report._repr_html_()
    assert snippet.startswith("<iframe srcdoc=") and "&lt;script&gt;" in snippet
    written = typed_report.write_html(tmp_path / "r.html")
    assert written.read_text(encoding="utf-8") == render_html(typed_report)


def test_report_html_command_renders_a_saved_report(typed_report: Any, tmp_path: Path, run_cli) -> None:
    json_path = typed_report.write(tmp_path / "r.json")
    result = run_cli("report", "html", str(json_path))
    assert result.returncode == 0, result.stderr
    html_path = tmp_path / "r.html"
    assert html_path.read_text(encoding="utf-8") == render_html(typed_report)
    assert f"HTML report written to {html_path}" in result.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something else"}')
    result = run_cli("report", "html", str(bad), "-o", str(tmp_path / "x.html"))
    assert result.returncode == 2 and "bad.json" in result.stderr and not (tmp_path / "x.html").exists()
    result = run_cli("report", "html", str(tmp_path / "missing.json"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_diff_engine_report_shows_splits_summary_and_side_a_chart() -> None:
    page_text = render_html(sample_engine_diff_report())
    page = parse(page_text)
    assert {"diff", "diff-summary", "unmatched", "regions-table", "region-0", "energy-A", "energy-B", "icicle"} <= (
        page.ids
    )
    region0 = page_text[page_text.index('id="region-0"') : page_text.index('id="region-1"')]
    assert "aten.mul.Tensor ×2 6 mJ" in region0 and "aten.gelu.default ×2 2 mJ" in region0  # per-operator split
    assert "side A runs &lt;5 ops&gt; where B runs one" in region0
    region1 = page_text[page_text.index('id="region-1"') : page_text.index('id="region-2"')]
    assert "knobs: float32_matmul_precision=high, closes_gap_share=90.0%" in region1
    visible = "".join(page.text)
    assert "torch.backends.<mkldnn>.enabled: A True, B False" in visible
    assert "90.9% of 11 operators in matched regions" in visible
    assert "Where the energy goes (side A, from the regions' per-operator split)" in visible
    island = data_island(page)
    assert {node["op"] for node in island["nodes"]} == {"aten.mul.Tensor", "aten.softmax.int", "aten.addmm.default"}


def test_overhead_explained_coverage_and_contention_from_the_model_fields() -> None:
    report = sample_report(layers=1)
    report["explained_coverage"] = 0.97
    report["overhead_energy_j"] = 0.004
    report["overhead"] = [
        {"module_path": "h.0.attn", "module_type": "Attention<T>", "calls": 1, "whole_energy_j": 0.02,
         "children_energy_j": 0.01, "operators_energy_j": 0.006, "overhead_energy_j": 0.004, "share": 0.1,
         "source": {"file": FILE, "line": 7, "function": "forward", "code": ""}},
    ]  # fmt: skip
    report["contention"] = {"windows": 40, "contended_windows": 0, "remeasured_windows": 0, "warning": None}
    report["nodes"][1]["flops"] = 0  # not counted: no FLOPs shown for it
    page_text = render_html(report)
    page = parse(page_text)
    assert {"overhead", "overhead-table", "explained", "contention"} <= page.ids
    assert "contention-warning" not in page.ids  # no warning: details only
    visible = "".join(page.text)
    assert "0.97 (operators + 4 mJ framework overhead) / whole run" in visible
    assert "Attention<T>" in visible and "model.py:7" in visible
    assert "fl" not in data_island(page)["nodes"][1]


def test_the_same_finding_in_every_layer_is_one_card_with_its_total() -> None:
    report = sample_report(layers=1)
    first = report["findings"][0]
    report["findings"] = [{**first, "nodes": [f"n{i}"]} for i in range(4)] + [report["findings"][1]]
    page_text = render_html(report)
    page = parse(page_text)
    assert {"finding-0", "finding-1"} <= page.ids and "finding-2" not in page.ids
    card = page_text[page_text.index('id="finding-0"') : page_text.index('id="finding-1"')]
    assert 'data-count="4"' in card and "×4 (repeated layers)" in card
    assert "excess 28 mJ" in card and "operators: n0, n1, n2, n3" in card
