"""case.toml schema: every problem gets a CaseError naming the file and field; the shipped corpus is complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from magneton.corpus.case import CaseError, default_root, load_case, load_corpus, parse_case
from magneton.corpus.validate import check_lines

GOOD_TOML = """\
id = "{id}"
title = "A bias added after the matmul"
category = "API misuse"
origin = "extra"
quick = true

[reference]
system = "PyTorch"
url = "https://github.com/pytorch/pytorch/issues/141210"

[expected]
rules = ["MAG120"]
lines = [3]

[device]
requires = "any"

[measured]
ratio = 1.3
provenance = "estimated"
backend = "estimate"
machine = "test"
"""

SLOW = "import torch\n\ny = x @ w + b\n"


def make_case(root: Path, name: str, toml: str | None = None, slow: str = SLOW, fast: bool = True) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "case.toml").write_text((toml if toml is not None else GOOD_TOML).format(id=name))
    (folder / "slow.py").write_text(slow)
    if fast:
        (folder / "fast.py").write_text("import torch\n")
    return folder


def good_data(folder: Path) -> dict[str, Any]:
    return {
        "id": folder.name,
        "title": "t",
        "category": "API misuse",
        "origin": "known",
        "reference": {"system": "PyTorch", "url": "https://example.org/1"},
        "expected": {"rules": ["MAG120"], "lines": [3]},
        "device": {"requires": "any"},
        "measured": {"ratio": 1.2, "provenance": "estimated", "backend": "estimate", "machine": "m"},
    }


def test_good_case_loads(tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path, "good"))
    assert case.id == "good"
    assert case.expected.rules == ("MAG120",)
    assert case.expected.lines == (3,)
    assert case.quick is True
    assert case.measured.ratio == 1.3
    assert case.target("slow").endswith("good/slow.py:workload")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("title"), "missing title"),
        (lambda d: d.update(category="Waste"), "category is 'Waste'; expected one of"),
        (lambda d: d.update(origin="blog"), "origin is 'blog'"),
        (lambda d: d.update(id="other"), "must equal the folder name"),
        (lambda d: d.update(colour="red"), "unknown key(s) colour"),
        (lambda d: d.pop("reference"), "missing table [reference]"),
        (lambda d: d["reference"].update(url="http://x"), "public https:// URL"),
        (lambda d: d["expected"].update(rules=[]), "expected.rules must name at least one entry"),
        (lambda d: d["expected"].update(lines=[0]), "expected.lines must be a non-empty list"),
        (lambda d: d["expected"].update(lines="3"), "expected.lines must be a non-empty list"),
        (lambda d: d["device"].update(requires="tpu"), "device.requires is 'tpu'"),
        (lambda d: d["device"].update(requires="cuda"), "missing device.reason"),
        (lambda d: d["device"].update(extras=["jax"]), "device.extras entry is 'jax'"),
        (lambda d: d["measured"].pop("ratio"), "measured.ratio is missing"),
        (lambda d: d["measured"].update(ratio=-1), "measured.ratio must be a positive number"),
        (lambda d: d["measured"].update(provenance="guessed"), "measured.provenance must be"),
        (lambda d: d["measured"].pop("machine"), "missing measured.machine"),
        (lambda d: d.update(quick="yes"), "quick must be true or false"),
    ],
)
def test_schema_errors_name_the_field(tmp_path: Path, mutate: Any, message: str) -> None:
    folder = make_case(tmp_path, "case")
    data = good_data(folder)
    mutate(data)
    with pytest.raises(CaseError) as err:
        parse_case(data, folder)
    assert message in str(err.value)
    assert str(folder / "case.toml") in str(err.value) or str(folder) in str(err.value)


def test_note_replaces_a_missing_ratio(tmp_path: Path) -> None:
    folder = make_case(tmp_path, "gpu")
    data = good_data(folder)
    data["measured"] = {"note": "needs a CUDA GPU"}
    assert parse_case(data, folder).measured.ratio is None


def test_missing_variant_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="missing fast.py"):
        load_case(make_case(tmp_path, "nofast", fast=False))
    with pytest.raises(CaseError, match="not valid TOML"):
        load_case(make_case(tmp_path, "badtoml", toml="id = [unclosed\n"))
    with pytest.raises(CaseError, match="no case.toml"):
        (tmp_path / "empty").mkdir()
        load_case(tmp_path / "empty")


def test_a_broken_case_does_not_stop_the_others(tmp_path: Path) -> None:
    make_case(tmp_path, "a-good")
    make_case(tmp_path, "b-broken", toml='id = "b-broken"\n')
    make_case(tmp_path, "c-good")
    corpus = load_corpus(tmp_path)
    assert [c.id for c in corpus.cases] == ["a-good", "c-good"]
    assert len(corpus.errors) == 1 and "b-broken" in str(corpus.errors[0])
    named = load_corpus(tmp_path, ids=["c-good", "nope"])
    assert [c.id for c in named.cases] == ["c-good"]
    assert "no case 'nope'" in str(named.errors[0])


def test_expected_lines_must_hold_code(tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path, "blank", slow="import torch\n\n# a comment\n"))
    check = check_lines(case)
    assert not check.passed and "[3]" in check.detail
    assert check_lines(load_case(make_case(tmp_path, "fine"))).passed


# The shipped corpus.


@pytest.fixture(scope="module")
def shipped() -> Any:
    return load_corpus(Path(__file__).resolve().parents[1] / "corpus")


def test_shipped_corpus_loads_without_errors(shipped: Any) -> None:
    assert shipped.errors == ()
    assert len(shipped.cases) >= 24


def test_shipped_corpus_covers_the_reference_cases(shipped: Any) -> None:
    origins = [c.origin for c in shipped.cases]
    assert origins.count("known") == 16
    assert origins.count("new") == 8
    assert sum("hf" in c.device.extras and c.device.requires != "cuda" for c in shipped.cases) >= 5
    assert {c.category for c in shipped.cases} == {"API misuse", "Misconfiguration", "Redundant computation"}
    assert any(c.quick for c in shipped.cases)


def test_shipped_cases_are_measured_or_say_why(shipped: Any) -> None:
    for case in shipped.cases:
        check = check_lines(case)
        assert check.passed, f"{case.id}: {check.detail}"
        if case.device.requires == "cuda":
            assert case.device.reason and case.measured.note
        else:
            assert case.measured.ratio is not None, f"{case.id} has no measured ratio"
            assert case.measured.provenance in ("measured", "estimated")


def test_default_root_is_a_corpus_folder() -> None:
    assert default_root().is_dir()


def test_measured_table_round_trips_through_toml(tmp_path: Path) -> None:
    from magneton.corpus.measure import PairEnergy
    from magneton.corpus.validate import CaseValidation, measured_table, write_measured
    from magneton.measure.stats import summarize

    folder = make_case(tmp_path, "measured")
    energy = PairEnergy(
        ratio=summarize([1.4, 1.5, 1.6]),
        slow_energy_j=summarize([0.3]),
        fast_energy_j=summarize([0.2]),
        slow_time_s=summarize([0.01]),
        fast_time_s=summarize([0.01]),
        trials=3,
        backend="estimate",
        provenance="estimated",
        sensor="cpu time",
    )
    table = measured_table(CaseValidation("measured", "ok", energy=energy), 'CPU "X" \\ 2 threads', note='busy "VM"')
    write_measured(folder / "case.toml", table)
    case = load_case(folder)
    assert case.measured.ratio == 1.5
    assert case.measured.machine == 'CPU "X" \\ 2 threads'
    assert case.measured.note == 'busy "VM"'
    assert case.title == "A bias added after the matmul"  # the rest of the file is kept


@pytest.mark.parametrize("allocator", ["settled", "process", "steady"])
def test_validate_measures_under_the_allocator_asked_for(allocator: str, allocator_calls: list[str]) -> None:
    import torch

    from magneton.corpus.measure import BuiltVariant, measure_pair
    from magneton.diff.settings import record_settings
    from magneton.workload import Workload

    x = torch.randn(64, 64)
    slow = BuiltVariant("slow", Workload(lambda y: (y @ y) @ y, (x,)), record_settings())
    fast = BuiltVariant("fast", Workload(lambda y: y @ y, (x,)), record_settings())
    energy = measure_pair(slow, fast, "estimate", trials=1, window_s=0.01, allocator=allocator)  # type: ignore[arg-type]
    assert allocator_calls == ([] if allocator == "process" else [allocator]) and energy.allocator == allocator
    assert energy.to_json()["allocator"] == allocator


def case_that_fails_after_an_earlier_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A case whose variants raise where an earlier case left state behind (a module in ``sys.modules``), as
    this process has it now; in a fresh interpreter they run."""
    import sys
    import types

    variant = (
        "import sys\nimport torch\n\n"
        "if 'magneton_test_state_left_by_an_earlier_case' in sys.modules:\n"
        "    raise RuntimeError('state from an earlier case')\n\n\n"
        "def workload():\n    return (lambda x: x * 2), (torch.ones(4),)\n"
    )
    folder = make_case(tmp_path, "fresh", slow=variant)
    (folder / "fast.py").write_text(variant)
    monkeypatch.setitem(sys.modules, "magneton_test_state_left_by_an_earlier_case", types.ModuleType("state"))
    return folder


def test_validate_measures_each_case_in_a_fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from magneton.corpus.validate import ValidateOptions, validate_cases

    folder = case_that_fails_after_an_earlier_case(tmp_path, monkeypatch)
    options = ValidateOptions(backend="estimate", trials=1, min_ratio=0.0)
    [isolated] = validate_cases([load_case(folder)], options)
    [in_process] = validate_cases([load_case(folder)], ValidateOptions(backend="estimate", trials=1, isolate=False))
    assert isolated.energy is not None and "loads" in [c.name for c in isolated.checks if c.passed]
    assert in_process.status == "failed" and "state from an earlier case" in in_process.reason


def test_eval_runs_each_case_in_a_fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from magneton.corpus.detectors import EvalOptions
    from magneton.corpus.evaluate import evaluate

    folder = case_that_fails_after_an_earlier_case(tmp_path, monkeypatch)
    steps: list[str] = []

    def run(isolate: bool) -> str:
        options = EvalOptions(backend="estimate", trials=1, isolate=isolate)
        evaluation = evaluate(
            [load_case(folder)], options, on_step=lambda case, step: steps.append(step), steps_to_run=("analyze",)
        )
        return evaluation.runs[0].steps["analyze"].status

    assert run(isolate=True) == "ok" and steps == ["analyze"]  # the child reports its steps as they start
    assert run(isolate=False) == "error"
