"""Figures for the HTML report and the trace (run by `just bench`). Prints figures; asserts nothing.

Model: GPT-2 from transformers, default width, random weights, batch 1 x 128 tokens; 12 layers
(`--quick`: 2). Prints the HTML page's size (the issue's bound: under ~5 MB for 12 layers), the time to
render it, and the trace's size, event count and timed-pass wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 layers instead of 12")
    args = parser.parse_args()
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    import magneton
    from magneton.report.html import render_html

    layers = 2 if args.quick else 12
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=layers)).eval()
    ids = torch.randint(0, 50257, (1, 128))
    with tempfile.TemporaryDirectory() as folder:
        trace_path = Path(folder) / "trace.json"
        start = time.perf_counter()
        report = magneton.analyze(
            model, ids, backend="estimate", trials=2, trace_events=trace_path, target=f"gpt2-{layers}-layers"
        )
        analyze_s = time.perf_counter() - start
        start = time.perf_counter()
        page = render_html(report)
        render_s = time.perf_counter() - start
        trace = json.loads(trace_path.read_text())
        trace_bytes = trace_path.stat().st_size
    ops = [e for e in trace["traceEvents"] if e.get("cat") == "operator"]
    span_ms = (ops[-1]["ts"] + ops[-1]["dur"] - ops[0]["ts"]) / 1e3 if ops else 0.0
    print(f"GPT-2, {layers} layers, {len(report.nodes)} operators (analysis {analyze_s:.1f} s, estimate backend)")
    print(f"  HTML page:   {len(page.encode()) / 1e6:.2f} MB, rendered in {render_s * 1e3:.0f} ms")
    print(f"  trace:       {trace_bytes / 1e6:.2f} MB, {len(trace['traceEvents'])} events, {len(ops)} operator slices")
    print(
        f"  timed pass:  {span_ms:.1f} ms from first to last operator (report's forward pass: "
        f"{report.total_time_s * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
