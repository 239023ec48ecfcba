# Magneton tasks. CI runs `just test` and `just lint` through .ci/run; the README shows the same commands.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Analyze the bundled example workload (a 4-layer GPT-2-like model on CPU).
demo:
    magneton analyze magneton.examples.tiny_gpt:workload --json out/tiny_gpt.json

# The test suite (CPU only; GPU paths are mocked).
test *ARGS:
    python -m pytest {{ARGS}}

# Lint and type-check everything that ships or tests: the package, the rule catalog, the corpus, the tests.
# CI runs this after the tests (.ci/run).
lint:
    ruff check magneton tests rules corpus setup.py
    ruff format --check magneton tests rules corpus setup.py
    mypy

# Regenerate the rule reference (docs/rules.md) from the rule classes; a test checks it for drift.
docs:
    python -m magneton.rules.docs docs/rules.md

# Regenerate the golden files of `magneton lint` (terminal, JSON, SARIF) in tests/golden/.
golden-lint:
    MAGNETON_UPDATE_GOLDEN=1 python -m pytest tests/test_lint_golden.py -q

# The torch_compat tests against the oldest torch that pyproject accepts, in a venv of its own
# (.venv-oldest-torch, ~3 GB: PyPI's Linux wheels of old torch are CUDA builds; they import and run on a CPU).
compat-oldest:
    #!/usr/bin/env bash
    set -euo pipefail
    floor=$(grep -oP '"torch>=\K[0-9.]+' pyproject.toml)
    venv=.venv-oldest-torch
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "torch==$floor" "numpy<2" pytest
    "$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'
    PYTHONPATH=. "$venv/bin/python" -m pytest tests/test_torch_compat.py -q -p no:cacheprovider --noconftest

# The HTML report in headless Chromium (apt-get install -y chromium): no console errors, the chart drew,
# findings listed, clicks work; on samples and a real analysis. Also retakes the README's screenshot.
browser-test:
    python tests/browser_check.py --screenshot docs/html-report.png

# Regenerate magneton/schemas/report-1.schema.json and docs/report.md from the typed report model (never by hand).
schema:
    python -m magneton.report.schema

# Regenerate the terminal report's golden outputs (tests/golden/report-*.txt); never edit them by hand.
golden:
    python -m tests.golden.report_fixture

# Benchmarks: wall time, coverage, memory and repeatability figures (printed, not asserted).
bench:
    python tests/bench/bench_analyze.py
    python tests/bench/bench_lint.py
    python tests/bench/bench_report_model.py
    python tests/bench/bench_floor.py
    python tests/bench/bench_contention.py
    python tests/bench/bench_allocator.py
    python tests/bench/bench_train.py
    python tests/bench/bench_html.py
    python tests/bench/bench_diff.py
    python tests/bench/bench_expected.py

# The corpus benchmark: score analyze, diff, lint and fix on every slow/fast case (< 20 min on 2 cores; not CI,
# which runs the quick subset through tests/test_corpus_quick.py). JSON in out/corpus-eval.json.
corpus *ARGS:
    magneton corpus eval --json out/corpus-eval.json {{ARGS}}

# Check every corpus case (same outputs, slow costs more here, expected lines hold code).
corpus-validate *ARGS:
    magneton corpus validate --json out/corpus-validate.json {{ARGS}}

# On a CUDA machine: analyse a small GPT-2-like model with NVML twice, then `magneton diff` on one GPU corpus
# case (float32 matmul precision highest vs high), all under 5 minutes.
gpu-check:
    python -m magneton.gpu_check
    python -m magneton corpus eval --case new-fp32-math-mode --step diff --backend nvml --trials 3

# Re-record the expected-energy test data (tests/data/expected/recorded-cpu.json) on a QUIET machine:
# a default calibration and one TinyGPT analysis (~2 minutes). Never edit the file by hand.
record-expected:
    python -m tests.record_expected
