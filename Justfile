# Magneton tasks. CI runs `just test` through .ci/run; the README shows the same commands.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Analyze the bundled example workload (a 4-layer GPT-2-like model on CPU).
demo:
    magneton analyze magneton.examples.tiny_gpt:workload --json out/tiny_gpt.json

# The test suite (CPU only; GPU paths are mocked).
test *ARGS:
    python -m pytest {{ARGS}}

# Lint and type-check.
lint:
    ruff check magneton tests
    ruff format --check magneton tests
    mypy

# The HTML report in headless Chromium (apt-get install -y chromium): no console errors, the chart drew,
# findings listed, clicks work; on samples and a real analysis. Also retakes the README's screenshot.
browser-test:
    python tests/browser_check.py --screenshot docs/html-report.png

# Regenerate magneton/schemas/report-1.schema.json from the typed report model (never edit it by hand).
schema:
    python -m magneton.report.schema

# Benchmarks: wall time, coverage, memory and repeatability figures (printed, not asserted).
bench:
    python tests/bench/bench_analyze.py
    python tests/bench/bench_html.py

# On a CUDA machine: analyse a small GPT-2-like model with NVML twice (< 5 minutes).
gpu-check:
    python -m magneton.gpu_check
