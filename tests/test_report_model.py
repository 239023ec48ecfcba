"""The typed report model: generated schema, JSON round trips, loading old and bad reports, provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest

from magneton.errors import MagnetonError, ReportError
from magneton.findings import Finding, FindingSource
from magneton.provenance import EnergyProvenance, provenance_of_backend
from magneton.report.model import SCHEMA, BackendName, BackendSummary, Node, NodeSource, Region, Report

ESTIMATED = EnergyProvenance.estimated("energy_j = process_cpu_time_s * watts_per_core", {"watts_per_core": 3.5})


def make_report(**changes: Any) -> Report:
    node = Node(
        id="addmm",
        op="aten.addmm.default",
        energy_j=0.25,
        time_s=0.001,
        expected_energy_j=None,
        source=NodeSource(file="model.py", line=7, function="forward", code="y = self.fc(x)"),
        provenance=ESTIMATED,
        energy_ci_j=(0.2, 0.3),
        ci_confidence=0.9375,
        share=1.0,
    )
    fields: dict[str, Any] = {
        "target": "model.py:workload",
        "device": "cpu",
        "backend": BackendSummary(
            name="estimate", provenance="estimated", sensor="none: process CPU time", formula=ESTIMATED.formula
        ),
        "energy_provenance": ESTIMATED,
        "total_energy_j": 0.5,
        "total_time_s": 0.002,
        "coverage": 0.5,
        "node_energy_sum_j": 0.25,
        "nodes": [node],
        "findings": [],
    }
    fields.update(changes)
    return Report(**fields)


def test_checked_in_schema_is_generated_from_the_model() -> None:
    from magneton.report.schema import SCHEMA_PATH, schema_text

    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "schema drifted: run `just schema`"


def test_checked_in_field_reference_is_generated_from_the_model() -> None:
    from magneton.report.docs import DOCS_PATH, docs_text

    text = DOCS_PATH.read_text(encoding="utf-8")
    assert text == docs_text(), "docs/report.md drifted: run `just schema`"
    assert "| `energy_provenance` | `EnergyProvenance` | required | of the totals;" in text
    assert "| `held_out_error` | `float \\| None` | `null` | predicted: its error on samples it did not see |" in text


def test_schema_check_command_reports_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import magneton.report.schema as schema

    stale = tmp_path / "report-1.schema.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(schema, "SCHEMA_PATH", stale)
    import magneton.report.docs as docs

    monkeypatch.setattr(docs, "DOCS_PATH", tmp_path / "report.md")
    assert schema.main(["--check"]) == 1
    assert schema.main([]) == 0
    assert schema.main(["--check"]) == 0
    assert json.loads(stale.read_text())["$id"] == SCHEMA


def test_backend_names_in_the_model_match_the_registry() -> None:
    from magneton.measure.backends import BACKEND_NAMES

    assert set(get_args(BackendName)) == set(BACKEND_NAMES) - {"auto"}


def test_json_round_trip_is_lossless() -> None:
    report = make_report(
        targets=None,
        regions=[
            Region(
                a_nodes=["a"],
                b_nodes=["b"],
                a_energy_j=2.0,
                b_energy_j=1.0,
                ratio=2.0,
                verdict="waste",
                ratio_ci=(1.8, 2.2),
                ci_confidence=0.95,
            )
        ],
        findings=[
            Finding(
                kind="rule",
                rule="MAG101",
                category="API misuse",
                title="t",
                energy_j=0.25,
                excess_energy_j=0.1,
                share=0.2,
                source=FindingSource(file="model.py", line=7),
                nodes=("addmm",),
                provenance=ESTIMATED,
            )
        ],
    )
    from magneton.report.load import decode_report

    assert decode_report(report.to_json()) == report
    assert report.to_dict()["nodes"][0]["energy_ci_j"] == [0.2, 0.3]  # JSON types, not tuples


def test_report_validates_against_generated_schema(report_schema: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(report_schema).validate(make_report().to_dict())
    no_target = make_report(target=None).to_dict()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(report_schema).validate(no_target)
    diff = make_report(target=None, targets=["a.py:f", "b.py:f"]).to_dict()
    jsonschema.Draft202012Validator(report_schema).validate(diff)


def test_write_is_atomic_and_load_reads_it_back(tmp_path: Path) -> None:
    from magneton import load_report

    report = make_report()
    path = report.write(tmp_path / "deep" / "r.json")
    assert load_report(path) == report
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]  # no temporary file left behind


def _older_report_json() -> dict[str, Any]:
    """A report as the first writer produced it: no provenance anywhere, no confidence of the total."""
    data = make_report().to_dict()
    for field in ("energy_provenance", "total_energy_ci_confidence", "noisy_relative_spread", "ci_method", "regions"):
        del data[field]
    for node in data["nodes"]:
        del node["provenance"]
        del node["expected_provenance"]
    data["backend"] = {
        "name": "estimate",
        "provenance": "estimated",
        "sensor": "none: process CPU time",
        "formula": "energy_j = process_cpu_time_s * watts_per_core",
        "constants": {"watts_per_core": 3.5},
    }
    return data


def test_older_report_loads_with_provenance_from_its_backend(tmp_path: Path) -> None:
    from magneton import load_report

    path = tmp_path / "old.json"
    path.write_text(json.dumps(_older_report_json()))
    report = load_report(path)
    assert report.energy_provenance == ESTIMATED
    assert report.nodes[0].provenance == ESTIMATED
    assert report.nodes[0].expected_provenance is None
    assert report.total_energy_ci_confidence is None


def test_replay_provenance_keeps_the_original() -> None:
    backend = {
        "name": "replay",
        "provenance": "measured",
        "sensor": "replay of t.json (recorded with RAPL)",
        "constants": {
            "trace_path": "/tmp/t.json",
            "recorded_backend": {"name": "rapl", "provenance": "measured", "sensor": "RAPL package-0"},
        },
    }
    provenance = provenance_of_backend(backend)
    assert provenance.kind == "replayed"
    assert provenance.trace_path == "/tmp/t.json"
    assert provenance.original == EnergyProvenance.measured("RAPL package-0")
    assert provenance.describe() == "replayed from /tmp/t.json, originally measured by RAPL package-0"


def test_predicted_provenance_says_model_training_size_and_error() -> None:
    predicted = EnergyProvenance.predicted("GradientBoosting on log-energy", 512, 0.18, "median absolute log error")
    assert msgspec.json.decode(msgspec.json.encode(predicted)) == {
        "kind": "predicted",
        "model": "GradientBoosting on log-energy",
        "training_set_size": 512,
        "held_out_error": 0.18,
        "held_out_metric": "median absolute log error",
    }
    assert "trained on 512 samples" in predicted.describe()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"schema": "magneton.report/2"}', "schema is 'magneton.report/2', expected 'magneton.report/1' (a newer"),
        (b'{"schema": "sarif-2.1.0"}', "(not a Magneton report)"),
        (b'{"schema": "magneton.report/1", "device": "cpu"}', "does not match magneton.report/1: Object missing"),
    ],
)
def test_bad_reports_get_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    from magneton import load_report

    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ReportError) as info:
        load_report(path)
    assert str(info.value).startswith(f"report {path}")
    assert message in str(info.value)
    assert isinstance(info.value, MagnetonError)


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    from magneton import load_report

    data = make_report().to_dict()
    data["nodes"][0]["energy_j"] = "a lot"
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"\$\.nodes\[0\]\.energy_j"):
        load_report(path)
    data["nodes"][0]["energy_j"] = -1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"Expected `float` >= 0"):
        load_report(path)


def test_missing_report_file(tmp_path: Path) -> None:
    from magneton import load_report

    with pytest.raises(ReportError, match="does not exist"):
        load_report(tmp_path / "nope.json")


def test_importing_magneton_imports_neither_torch_nor_rich(run_python) -> None:
    code = (
        "import sys, magneton\n"
        "assert callable(magneton.load_report) and magneton.Report.__name__ == 'Report'\n"
        "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('torch', 'rich')))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_write_refuses_a_number_json_cannot_hold(tmp_path: Path) -> None:
    bad = make_report(total_energy_j=float("nan"))
    with pytest.raises(ReportError, match=r"not written to .*\$\.total_energy_j"):
        bad.write(tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()
