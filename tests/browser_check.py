"""Open HTML reports in headless Chromium and check them as a person would see them (``just browser-test``).

Checks, through the DOM after the page's scripts ran (``--dump-dom``): no console message at all (Chromium
prints console output and uncaught errors on stderr with ``--enable-logging=stderr``), the icicle drew its
boxes, the operator table has rows, every finding is listed, and a scripted click on the chart, a filter and the
fold toggle work. ``--screenshot PATH`` also saves a PNG of a real analysis for the README.

Used by tests/test_html_browser.py (skipped when no Chromium is installed) and run directly by the Justfile.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the checkout's magneton, whatever is installed
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Appended to a copy of the page under test only: clicks the widest module box, filters and unfolds the table,
# and writes what it saw into the DOM for --dump-dom to carry out.
SELF_TEST = """
<script>
(function () {
  var out = {};
  var rects = document.querySelectorAll("#icicle rect");
  out.boxes = rects.length;
  var rootLabel = document.querySelector("#icicle text");
  out.root_label = rootLabel ? rootLabel.textContent : "";
  var moduleBox = document.querySelector("#icicle g.box-module rect");
  if (moduleBox) {
    moduleBox.dispatchEvent(new MouseEvent("click", {bubbles: true}));
    out.clicked_title = document.querySelector("#details h3").textContent;
    out.breadcrumb = document.getElementById("breadcrumb").textContent;
    out.detail_rows = document.querySelectorAll("#details tbody tr").length;
  }
  var chartFold = document.getElementById("icicle-fold");
  if (chartFold) {  // folded by default: unfold, count, fold again
    chartFold.checked = false; chartFold.dispatchEvent(new Event("change"));
    out.unfolded_boxes = document.querySelectorAll("#icicle rect").length;
    out.unfolded_root_label = document.querySelector("#icicle text").textContent;
    chartFold.checked = true; chartFold.dispatchEvent(new Event("change"));
  }
  var table = document.querySelector("#op-table tbody");
  out.folded_rows = table ? table.rows.length : 0;
  var fold = document.getElementById("op-fold");
  if (fold) { fold.checked = false; fold.dispatchEvent(new Event("change")); out.unfolded_rows = table.rows.length; }
  var filter = document.getElementById("op-filter");
  if (filter) {
    filter.value = "zzz-no-such-operator"; filter.dispatchEvent(new Event("input"));
    out.filtered_rows = table.rows.length;
    filter.value = ""; filter.dispatchEvent(new Event("input"));
  }
  var header = document.querySelector("#op-table thead th[data-key='e']");
  if (header) { header.click(); out.sorted = header.className; }
  var pre = document.createElement("pre"); pre.id = "selftest"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(browser: str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="magneton-chromium-") as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, dict[str, str | None]] = {}
        self.classes: list[str] = []
        self.icicle_rects = 0
        self.findings_listed = 0  # repeated findings fold into one card that says how many it holds
        self._depth_in_icicle = 0
        self._selftest: list[str] | None = None
        self.selftest = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids[str(attributes["id"])] = attributes
        self.classes.extend(str(attributes.get("class") or "").split())
        if "finding" in str(attributes.get("class") or "").split():
            self.findings_listed += int(attributes.get("data-count") or 1)
        if attributes.get("id") == "icicle-svg":
            self._depth_in_icicle = 1
        elif self._depth_in_icicle and tag == "rect":
            self.icicle_rects += 1
        if attributes.get("id") == "selftest":
            self._selftest = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._depth_in_icicle = 0
        if tag == "pre" and self._selftest is not None:
            self.selftest, self._selftest = "".join(self._selftest), None

    def handle_data(self, data: str) -> None:
        if self._selftest is not None:
            self._selftest.append(data)


@dataclass
class PageCheck:
    path: Path
    problems: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    self_test: dict[str, Any] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)


def check_page(browser: str, html_path: Path, findings: int) -> PageCheck:
    """Load a copy of ``html_path`` with the self-test appended; return every problem found."""
    check = PageCheck(html_path)
    page = html_path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="magneton-page-") as folder:
        probe = Path(folder) / html_path.name
        probe.write_text(page.replace("</body>", SELF_TEST + "</body>"), encoding="utf-8")
        result = _chromium(browser, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    if result.returncode != 0:
        check.problems.append(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
        return check
    check.console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    if check.console:
        check.problems.append("console messages: " + " | ".join(check.console))
    dom = _Dom()
    dom.feed(result.stdout)
    check.ids = set(dom.ids)
    try:
        check.self_test = json.loads(dom.selftest) if dom.selftest else {}
    except json.JSONDecodeError:
        check.problems.append(f"self-test output unreadable: {dom.selftest[:200]!r}")
    if not check.self_test:
        check.problems.append("the page's scripts did not run to the end (no self-test result in the DOM)")
    if "icicle" in dom.ids:
        boxes = int(dom.ids["icicle"].get("data-boxes") or 0)
        if boxes < 3 or dom.icicle_rects != boxes:
            check.problems.append(f"icicle drew {dom.icicle_rects} boxes (data-boxes={boxes})")
        self_test = check.self_test
        if not self_test.get("clicked_title") or not self_test.get("detail_rows"):
            check.problems.append(f"clicking a module box showed no details: {self_test}")
        if not self_test.get("folded_rows") or self_test.get("unfolded_rows", 0) < self_test.get("folded_rows", 0):
            check.problems.append(f"operator table rows wrong: {self_test}")
        if self_test.get("unfolded_boxes", 0) < boxes:
            check.problems.append(f"unfolding the chart's layers lost boxes: {self_test}")
        if self_test.get("unfolded_root_label") != self_test.get("root_label"):
            check.problems.append(f"unfolding the chart changed its total: {self_test}")
        if self_test.get("filtered_rows") != 0:
            check.problems.append(f"the filter did not filter: {self_test}")
    listed = dom.findings_listed
    if listed != findings:
        check.problems.append(f"{listed} findings listed, expected {findings}")
    return check


def screenshot(browser: str, html_path: Path, png: Path, width: int = 1280, height: int = 2000) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    result = _chromium(
        browser, f"--window-size={width},{height}", "--virtual-time-budget=10000", f"--screenshot={png}",
        html_path.resolve().as_uri(),
    )  # fmt: skip
    if result.returncode != 0 or not png.is_file():
        raise RuntimeError(f"screenshot failed: {result.stderr[-2000:]}")


def real_report() -> Any:
    """A real analysis with the cheapest settings: a small transformers GPT-2 (its hand-written GELU shows),
    or the bundled GPT-2-like model where transformers is not installed."""
    from magneton.pipeline import AnalyzeOptions, analyze_target

    options = AnalyzeOptions.from_flat(backend="estimate", trials=2, min_window_s=0.01, idle_s=0.05)
    try:
        import transformers  # noqa: F401
    except ImportError:
        return analyze_target("magneton.examples.tiny_gpt:workload", options)
    # Relative to the checkout, so no local path shows in the README's screenshot.
    target = f"{os.path.relpath(REPO_ROOT / 'tests' / 'workloads' / 'hf_gpt2_small.py')}:workload"
    return analyze_target(target, options)


def main(argv: list[str] | None = None) -> int:
    from report_samples import sample_diff_report, sample_engine_diff_report, sample_report

    from magneton.report.html import as_mapping, write_html

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the real analysis's report here")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "browser-test", help="where pages are written")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium found: install it with `apt-get install -y chromium`", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    pages = {
        "sample-analyze.html": sample_report(layers=4, phases=True),
        "sample-diff.html": sample_diff_report(),
        "sample-engine-diff.html": sample_engine_diff_report(),
        "real-analysis.html": real_report(),
    }
    failed = 0
    for name, report in pages.items():
        path = args.out / name
        write_html(path, report)
        check = check_page(browser, path, findings=len(as_mapping(report).get("findings") or []))
        status = "ok" if not check.problems else "FAILED"
        print(f"{status:6} {path} ({path.stat().st_size / 1e3:.0f} kB) {json.dumps(check.self_test)}")
        for problem in check.problems:
            print(f"       {problem}")
        failed += bool(check.problems)
    if args.screenshot is not None:
        screenshot(browser, args.out / "real-analysis.html", args.screenshot)
        print(f"screenshot written to {args.screenshot}")
    print(f"{len(pages) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
