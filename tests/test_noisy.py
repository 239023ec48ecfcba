"""A node whose trials disagree is marked noisy; one whose trials agree is not (replayed from a trace, via the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

from magneton.capture import capture
from magneton.measure.energy_pass import FORWARD_KEY
from magneton.workload import Workload

MODEL = """
import torch

def workload():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval()
    return model, (torch.randn(4, 16),)
"""


def test_spread_trials_make_a_node_noisy(tmp_path: Path, run_cli) -> None:
    target_file = tmp_path / "two_ops.py"
    target_file.write_text(MODEL)
    namespace: dict = {}
    exec(compile(MODEL, str(target_file), "exec"), namespace)
    model, args = namespace["workload"]()
    graph = capture(Workload(model, args))
    linear = next(node for node in graph.nodes if node.op == "aten.linear.default")
    relu = next(node for node in graph.nodes if node.op == "aten.relu.default")
    trials = {
        linear.signature: [1.0, 0.5, 1.5, 1.0, 1.0],  # median 1.0, 95% interval [0.5, 1.5]: +-50%
        relu.signature: [0.25, 0.25, 0.25, 0.25, 0.25],
        FORWARD_KEY: [2.0, 2.0, 2.0, 2.0, 2.0],
    }
    trace = tmp_path / "spread.json"
    backend = {"name": "rapl", "provenance": "measured", "sensor": "RAPL (hand-written trace)", "min_window_s": 0.02}
    trace.write_text(
        json.dumps(
            {
                "schema": "magneton.trace/1",
                "backend": backend,
                "idle_power_w": 0.0,
                "measurements": {
                    key: [{"energy_j": e, "time_s": 0.001} for e in values] for key, values in trials.items()
                },
            }
        )
    )
    report_path = tmp_path / "report.json"
    done = run_cli(
        "analyze",
        f"{target_file}:workload",
        "--backend=replay",
        f"--trace={trace}",
        "--trials=5",
        "--warmup-calls=0",
        "--idle-s=0.01",
        "--quiet",
        f"--json={report_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    nodes = {node["op"]: node for node in json.loads(report_path.read_text())["nodes"]}
    assert nodes["aten.linear.default"]["energy_j"] == 1.0
    assert nodes["aten.linear.default"]["energy_ci_j"] == [0.5, 1.5]
    assert nodes["aten.linear.default"]["noisy"] is True
    assert nodes["aten.relu.default"]["noisy"] is False
