"""The magneton.report/1 JSON contract, atomic writes, and the ``magneton`` command end to end."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from torch import nn

from magneton.atomic import write_json_atomic, write_text_atomic
from magneton.capture import capture
from magneton.commands import exit_code
from magneton.measure.backends import BackendChoice
from magneton.measure.energy_pass import PassOptions, run_energy_pass
from magneton.pipeline import analyze_workload
from magneton.report.build import build_report
from magneton.report.model import Report
from magneton.workload import Workload

WORKLOADS = Path(__file__).resolve().parent / "workloads"
TINY_MLP = WORKLOADS / "tiny_mlp.py"


def validate(report: dict, schema: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator_cls(schema).validate(report)


class SmallBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(16, 32)
        self.down = nn.Linear(32, 16)
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x))
        h = self.down(h).transpose(0, 1).contiguous().transpose(0, 1)
        return self.norm(h + x)


@pytest.fixture(scope="module")
def report_model() -> Report:
    from magneton.pipeline import AnalyzeOptions

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        workload = Workload(SmallBlock().eval(), (torch.randn(8, 16),))
    # Measured detectors (overhead, allocator knob) are tested in their own files: a tiny block is mostly
    # framework overhead, and what its findings say depends on the machine's load.
    options = AnalyzeOptions.from_flat(
        backend="estimate", trials=2, min_window_s=0.002, idle_s=0.01, overhead=False, allocator_check=False
    )
    return analyze_workload(workload, "tests:small_block", options)


@pytest.fixture(scope="module")
def report(report_model: Report) -> dict:
    """The report as a script reading the JSON sees it."""
    return json.loads(report_model.to_json())


# --- the report ---------------------------------------------------------------------------------------


def test_report_validates_against_schema(report: dict, report_schema: dict) -> None:
    validate(report, report_schema)
    validate(json.loads(json.dumps(report, allow_nan=False)), report_schema)  # and survives a JSON round trip


def test_schema_rejects_a_broken_report(report: dict, report_schema: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    broken = json.loads(json.dumps(report))
    broken["backend"]["provenance"] = "guessed"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, report_schema)
    missing = json.loads(json.dumps(report))
    del missing["coverage"]
    with pytest.raises(jsonschema.ValidationError):
        validate(missing, report_schema)


def test_report_header_fields(report: dict) -> None:
    assert report["schema"] == "magneton.report/1"  # the public contract's name
    assert report["target"] == "tests:small_block"
    assert report["device"] == "cpu"
    assert report["backend"]["name"] == "estimate"
    assert report["backend"]["provenance"] == "estimated"
    assert report["backend"]["formula"] == "energy_j = process_cpu_time_s * watts_per_core"
    assert report["backend"]["reason"] == "requested with --backend estimate"
    assert report["capture"] == {"method": "torch.export", "notes": []}
    assert report["trials"] == 2
    assert report["min_window_s"] == 0.002
    assert report["total_energy_j"] > 0
    assert isinstance(report["coverage"], float) and report["coverage"] > 0
    assert report["findings"] == []
    assert report["node_energy_sum_j"] == pytest.approx(sum(node["energy_j"] for node in report["nodes"]))


def test_report_nodes(report: dict) -> None:
    ops = [node["op"] for node in report["nodes"]]
    assert ops.count("aten.linear.default") == 2
    assert ops.count("aten.transpose.int") == 2
    for node in report["nodes"]:
        if node["zero_cost_reason"] is not None:
            assert node["energy_j"] == 0.0 and node["time_s"] == 0.0
            assert node["measured_as"] is None and node["rounds"] == 0
        else:
            assert node["energy_j"] > 0 and node["rounds"] >= 1
            assert node["measured_as"] == node["id"]  # no two ops here share a signature
            low, high = node["energy_ci_j"]
            assert low <= node["energy_j"] <= high
        assert node["source"]["file"] == os.path.realpath(__file__) or node["source"]["file"] == __file__
        assert node["expected_energy_j"] is None
    linear = next(node for node in report["nodes"] if node["module_path"] == "up")
    assert linear["inputs"][0] == {
        "shape": [8, 16],
        "dtype": "float32",
        "stride": [16, 1],
        "contiguous": True,
        "device": "cpu",
    }


def test_shares_sum_to_one(report: dict) -> None:
    assert sum(node["share"] for node in report["nodes"]) == pytest.approx(1.0, abs=1e-9)
    for node in report["nodes"]:
        assert node["share"] == pytest.approx(node["energy_j"] / report["node_energy_sum_j"])


def test_rollup_by_line_sums_node_energies(report: dict) -> None:
    expected: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for node in report["nodes"]:
        expected[(node["source"]["file"], node["source"]["line"])].append(node)
    by_line = report["rollups"]["by_line"]
    assert len(by_line) == len(expected)
    for group in by_line:
        members = expected[(group["file"], group["line"])]
        assert group["nodes"] == [node["id"] for node in members]
        assert group["energy_j"] == pytest.approx(sum(node["energy_j"] for node in members))
        assert group["time_s"] == pytest.approx(sum(node["time_s"] for node in members))
        assert group["share"] == pytest.approx(sum(node["share"] for node in members))
        assert group["code"] == members[0]["source"]["code"]
    assert [g["energy_j"] for g in by_line] == sorted((g["energy_j"] for g in by_line), reverse=True)
    assert sum(g["energy_j"] for g in by_line) == pytest.approx(report["node_energy_sum_j"])


def test_rollup_by_op_sums_node_energies(report: dict) -> None:
    by_op = {group["op"]: group for group in report["rollups"]["by_op"]}
    assert set(by_op) == {node["op"] for node in report["nodes"]}
    for op, group in by_op.items():
        members = [node for node in report["nodes"] if node["op"] == op]
        assert group["count"] == len(members)
        assert group["energy_j"] == pytest.approx(sum(node["energy_j"] for node in members))
    assert by_op["aten.linear.default"]["count"] == 2
    assert by_op["aten.transpose.int"]["energy_j"] == 0.0
    assert sum(g["count"] for g in by_op.values()) == len(report["nodes"])
    energies = [g["energy_j"] for g in report["rollups"]["by_op"]]
    assert energies == sorted(energies, reverse=True)


def test_report_from_fake_backend_has_exact_numbers(fake_backend_cls, energy_per_call, report_schema) -> None:
    workload = Workload(SmallBlock().eval(), (torch.randn(8, 16),))
    graph = capture(workload)
    backend = fake_backend_cls()
    options = PassOptions(
        trials=2,
        min_window_s=0.001,
        forward_window_s=0.001,
        idle_s=0.0,
        replay_working_set_bytes=0,
        remeasure_contended=False,
    )
    result = run_energy_pass(graph, workload, backend, options)
    built = build_report("fake:target", graph, result, BackendChoice(backend, "test double"), options).to_dict()
    validate(built, report_schema)
    assert built["total_energy_j"] == 1000.0
    assert built["idle_power_w"] == 2.0
    expected = {node.id: 0.0 if node.zero_cost else energy_per_call(node.signature) for node in graph.nodes}
    assert {node["id"]: node["energy_j"] for node in built["nodes"]} == expected
    assert built["node_energy_sum_j"] == sum(expected.values())
    assert built["coverage"] == sum(expected.values()) / 1000.0
    per_call_s = fake_backend_cls.TIME_PER_CALL_S
    for node in built["nodes"]:
        if node["energy_j"]:
            # active energy = energy - idle power x time
            assert node["active_energy_j"] == node["energy_j"] - 2.0 * per_call_s


def test_nan_coverage_is_written_as_null(fake_backend_cls, tmp_path: Path, report_schema) -> None:
    from magneton.measure.energy_pass import FORWARD_KEY

    workload = Workload(SmallBlock().eval(), (torch.randn(8, 16),))
    graph = capture(workload)
    backend = fake_backend_cls(energy_per_call=lambda key: 0.0 if key == FORWARD_KEY else 1.0)
    options = PassOptions(trials=1, min_window_s=0.001, forward_window_s=0.001, idle_s=0.0, replay_working_set_bytes=0)
    built = build_report(
        "t", graph, run_energy_pass(graph, workload, backend, options), BackendChoice(backend, "test double"), options
    )
    assert built.coverage is None
    built.write(tmp_path / "r.json")
    validate(json.loads((tmp_path / "r.json").read_text()), report_schema)


def test_exit_codes(report_model: Report) -> None:
    import msgspec

    from magneton.findings import Finding

    finding = Finding(
        kind="rule",
        rule="MAG001",
        category="API misuse",
        title="t",
        energy_j=1.0,
        excess_energy_j=0.5,
        share=0.1,
        source=None,
    )
    with_finding = msgspec.structs.replace(report_model, findings=[finding])
    assert exit_code([], 0) == 0
    assert exit_code([report_model], 0) == 0
    assert exit_code([report_model, with_finding], 0) == 1
    assert exit_code([with_finding], 1) == 2
    assert exit_code([], 3) == 2


# --- atomic writes ----------------------------------------------------------------------------------------


def test_write_json_atomic_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "report.json"
    write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    write_json_atomic(path, {"a": 2})
    assert path.read_text() == '{\n  "a": 2\n}\n'
    assert os.listdir(path.parent) == ["report.json"]


def test_failed_json_dump_leaves_old_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"old": true}\n')
    with pytest.raises(ValueError):
        write_json_atomic(path, {"coverage": float("nan")})
    assert path.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["report.json"]


def test_failed_write_removes_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old\n")
    with pytest.raises(TypeError):
        write_text_atomic(path, b"bytes are not text")  # type: ignore[arg-type]
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["report.json"]


def test_interrupted_replace_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import magneton.atomic as atomic

    path = tmp_path / "report.json"
    path.write_text("old\n")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["report.json"]


# --- the command ------------------------------------------------------------------------------------------


def test_help_exits_zero(run_cli) -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "analyze" in result.stdout and "env" in result.stdout
    analyze_help = run_cli("analyze", "--help")
    assert analyze_help.returncode == 0
    for option in ("--json", "--backend", "--trials", "--min-window-s", "--quiet", "--cpu-watts-per-core"):
        assert option in analyze_help.stdout


def test_help_does_not_import_torch(run_python) -> None:
    code = (
        "import sys\n"
        "from magneton.cli import main\n"
        "for argv in (['--help'], ['analyze', '--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        "print('TORCH', sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3])\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "TORCH []"


def test_bad_option_exits_two(run_cli) -> None:
    result = run_cli("analyze", "x.py:f", "--trials", "0")
    assert result.returncode == 2
    assert "must be >= 1, got 0" in result.stderr


def test_env_lists_backends_with_reasons(run_cli) -> None:
    result = run_cli("env")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def line_for(name: str) -> str:
        found = [line for line in lines if line.strip().startswith(f"{name}:")]
        assert len(found) == 1, (name, result.stdout)
        return found[0]

    assert line_for("estimate").strip() == "estimate: available, estimated"
    for name in ("rapl", "nvml"):
        state = line_for(name).split(":", 1)[1].strip()
        # Unavailable backends say why; available ones say how they measure.
        if state.startswith("unavailable"):
            reason = state.removeprefix("unavailable — ")
            assert reason != state and len(reason) > 10, state
        else:
            assert state == "available, measured", state
    assert "formula       energy_j = process_cpu_time_s * watts_per_core" in result.stdout
    assert "replay: available" in result.stdout


def test_analyze_bundled_example(run_cli, tmp_path: Path, report_schema: dict) -> None:
    out = tmp_path / "out.json"
    result = run_cli(
        "analyze",
        "magneton.examples.tiny_gpt:workload",
        "--backend",
        "estimate",
        "--trials",
        "2",
        "--min-window-s",
        "0.002",
        "--no-overhead",
        "--no-allocator-check",
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    validate(report, report_schema)
    assert report["target"] == "magneton.examples.tiny_gpt:workload"
    assert report["backend"]["provenance"] == "estimated"
    assert isinstance(report["coverage"], float) and math.isfinite(report["coverage"])
    assert report["capture"]["method"] == "torch.export"
    assert any(
        node["source"] and node["source"]["file"].endswith(os.path.join("examples", "tiny_gpt.py"))
        for node in report["nodes"]
    )
    assert "ESTIMATED" in result.stdout
    assert f"JSON report written to {out}" in result.stdout
    assert result.stdout.splitlines()[-1] == "analyzed 1 target: 1 ok, 0 errors, 0 findings"


def test_batch_with_a_bad_target_still_reports_the_good_one(run_cli, tmp_path: Path, report_schema) -> None:
    shutil.copy(TINY_MLP, tmp_path / "tiny_mlp.py")
    out_dir = tmp_path / "reports"
    result = run_cli(
        "analyze",
        "missing.py:workload",
        "tiny_mlp.py:workload",
        "--backend",
        "estimate",
        "--cpu-watts-per-core",
        "3.5",
        "--trials",
        "2",
        "--min-window-s",
        "0.002",
        "--no-overhead",
        "--no-allocator-check",
        "--json",
        str(out_dir),
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "error: target 'missing.py:workload': file not found: missing.py" in " ".join(result.stderr.split())
    assert result.stdout.splitlines()[-1] == "analyzed 2 targets: 1 ok, 1 error, 0 findings"
    assert "Magneton energy report" not in result.stdout  # --quiet
    assert sorted(os.listdir(out_dir)) == ["tiny_mlp.py_workload.json"]
    report = json.loads((out_dir / "tiny_mlp.py_workload.json").read_text())
    validate(report, report_schema)
    assert report["target"] == "tiny_mlp.py:workload"
    assert report["backend"]["constants"]["watts_per_core"] == 3.5
    assert report["backend"]["constants"]["watts_per_core_origin"] == "override:--cpu-watts-per-core"
    assert [node["op"] for node in report["nodes"]] == [
        "aten.linear.default",
        "aten.relu.default",
        "aten.linear.default",
    ]


def test_missing_target_alone_exits_two(run_cli, tmp_path: Path) -> None:
    result = run_cli("analyze", "nowhere/model.py:workload", cwd=tmp_path)
    assert result.returncode == 2
    stderr = " ".join(result.stderr.split())
    assert "target 'nowhere/model.py:workload': file not found: nowhere/model.py" in stderr
    assert result.stdout.splitlines()[-1] == "analyzed 1 target: 0 ok, 1 error, 0 findings"


def test_in_process_cli_batch_continues_after_a_bad_target(tmp_path: Path, capsys, monkeypatch) -> None:
    from magneton.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "raises.py").write_text("def workload():\n    raise RuntimeError('weights missing')\n")
    code = main(
        [
            "analyze",
            "raises.py:workload",
            f"{TINY_MLP}:workload",
            "--backend",
            "estimate",
            "--trials",
            "1",
            "--min-window-s",
            "0.002",
            "--quiet",
            # The measured detectors can find something on a busy machine; this test is about the batch.
            "--no-expected",
            "--no-overhead",
            "--no-allocator-check",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert "RuntimeError: weights missing" in captured.err
    assert captured.out.splitlines()[-1] == "analyzed 2 targets: 1 ok, 1 error, 0 findings"


def test_compare_runs_ranks_common_measured_nodes_and_relative_differences(report_model: Report) -> None:
    import msgspec

    from magneton.report.compare import compare_runs

    def with_energies(total_j: float, energies: dict[str, float]) -> Report:
        first = report_model.nodes[0]
        nodes = [msgspec.structs.replace(first, id=i, energy_j=e) for i, e in energies.items()]
        return msgspec.structs.replace(report_model, total_energy_j=total_j, node_energy_sum_j=0.6, nodes=nodes)

    first = with_energies(1.0, {"a": 0.1, "b": 0.5, "view": 0.0})
    second = with_energies(3.0, {"a": 0.4, "b": 0.2, "view": 0.0})
    agreement = compare_runs(first, second)
    assert agreement.nodes == 2  # zero-cost nodes are not ranked
    assert agreement.spearman == -1.0  # the two measured nodes swapped order
    assert agreement.total_difference == 1.0  # |1 - 3| / mean 2
    assert agreement.node_sum_difference == 0.0


def test_compare_runs_says_whether_the_host_was_in_the_same_phase(report_model: Report) -> None:
    import msgspec

    from magneton.report.compare import compare_runs
    from magneton.report.model import MachineDrift

    def with_reference(readings_s: list[float] | None) -> Report:
        drift = None
        if readings_s is not None:
            drift = MachineDrift(reference="test", readings_s=readings_s, spread=0.0, threshold=0.25)
        return msgspec.structs.replace(report_model, machine_drift=drift)

    slow_phase, fast_phase = with_reference([15e-6, 16e-6, 17e-6]), with_reference([9e-6, 10e-6, 11e-6])
    assert compare_runs(slow_phase, fast_phase).sync_reference_difference == pytest.approx(6 / 13)  # medians 16, 10
    assert compare_runs(fast_phase, fast_phase).sync_reference_difference == 0.0
    assert compare_runs(fast_phase, with_reference(None)).sync_reference_difference is None
