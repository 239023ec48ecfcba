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

# Benchmarks: wall time, coverage, memory and repeatability figures (printed, not asserted).
bench:
    python tests/bench/bench_analyze.py
    python tests/bench/bench_diff.py

# On a CUDA machine: analyse a small GPT-2-like model with NVML twice (< 5 minutes).
gpu-check:
    python -m magneton.gpu_check
