"""One table of backends, and analysis options composed from their parts: every consumer reads the same source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magneton.cli import build_parser
from magneton.errors import BackendUnavailable, MagnetonError
from magneton.measure import backends
from magneton.measure.backends import (
    BACKEND_NAMES,
    BACKENDS,
    BackendOptions,
    BackendSpec,
    backend_availability,
    create_backend,
)
from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading
from magneton.measure.options import PassOptions
from magneton.pipeline import AnalyzeOptions

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "magneton" / "schemas" / "report-1.schema.json"


def _subparser(name: str):
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    return commands.choices[name]


def _action(parser, dest: str):
    return next(a for a in parser._actions if a.dest == dest)


def test_cli_backend_choices_come_from_the_table() -> None:
    assert tuple(_action(_subparser("analyze"), "backend").choices) == ("auto", *(s.name for s in BACKENDS))


def _schema_backend_names(schema: dict) -> list[set[str]]:
    """Every enum under a ``backend`` object's ``name`` property, wherever the schema puts it ($refs followed)."""
    defs = schema.get("$defs", {})

    def resolve(node: object) -> object:
        while isinstance(node, dict) and "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        return node

    found: list[set[str]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict) and "backend" in properties:
                backend = resolve(properties["backend"])
                name = resolve(backend.get("properties", {}).get("name", {})) if isinstance(backend, dict) else {}
                if isinstance(name, dict) and "enum" in name:
                    found.append(set(name["enum"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


def test_report_schema_backend_enum_matches_the_table() -> None:
    enums = _schema_backend_names(json.loads(SCHEMA_PATH.read_text()))
    assert enums, "the report schema should list the backend names"
    assert all(enum == set(BACKEND_NAMES) for enum in enums)


def test_env_probes_every_backend_of_the_table(tmp_path: Path) -> None:
    rows = backend_availability(BackendOptions(device="cpu", powercap_root=tmp_path / "none"))
    assert [row.name for row in rows] == list(BACKEND_NAMES)
    by_name = {row.name: row for row in rows}
    assert by_name["estimate"].available and by_name["estimate"].info is not None
    assert not by_name["rapl"].available and "powercap" in by_name["rapl"].detail


class _Fake(EnergyBackend):
    def __init__(self, name: str) -> None:
        self.name = name

    def info(self) -> BackendInfo:
        return BackendInfo(self.name, "measured", f"{self.name} sensor", 0.01)

    def open_window(self) -> object:
        return None

    def close_window(self, window: object) -> WindowReading:
        return WindowReading(0.0, 0.0)


def _unavailable(options: BackendOptions) -> EnergyBackend:
    raise BackendUnavailable("not on this machine")


def test_auto_walks_the_table_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    table = (
        BackendSpec("gpu", "a GPU sensor", lambda o: _Fake("gpu"), "sensor", applies=lambda o: o.device == "cuda"),
        BackendSpec("broken", "a sensor that is not readable", _unavailable, "sensor"),
        BackendSpec("host", "a host sensor", lambda o: _Fake("host"), "sensor"),
        BackendSpec("guess", "a model", lambda o: _Fake("guess"), "fallback"),
        BackendSpec("never", "only by name", lambda o: _Fake("never"), "never"),
    )
    monkeypatch.setattr(backends, "BACKENDS", table)
    monkeypatch.setattr(backends, "_BY_NAME", {spec.name: spec for spec in table})

    on_cpu = create_backend("auto", BackendOptions(device="cpu"))
    assert on_cpu.backend.name == "host"  # gpu does not apply to a CPU workload: no warning about it
    assert on_cpu.warnings == ("broken unavailable: not on this machine",)
    assert create_backend("auto", BackendOptions(device="cuda")).backend.name == "gpu"
    assert create_backend("never", BackendOptions()).backend.name == "never"

    table_without_host = tuple(spec for spec in table if spec.name != "host")
    monkeypatch.setattr(backends, "BACKENDS", table_without_host)
    fallback = create_backend("auto", BackendOptions(device="cpu"))
    assert fallback.backend.name == "guess"
    assert fallback.warnings[-1].startswith("no energy sensor readable: falling back to the guess backend")


def test_flat_options_are_routed_to_the_part_that_owns_them(tmp_path: Path) -> None:
    options = AnalyzeOptions.from_flat(
        backend="replay",
        device="cpu",
        trials=7,
        warmup_calls=0,
        idle_s=0.5,
        watts_per_core=4.5,
        trace_path=tmp_path / "t.json",
        record_trace=tmp_path / "r.json",
    )
    assert (options.backend, options.device, options.record_trace) == ("replay", "cpu", tmp_path / "r.json")
    assert options.energy_pass == PassOptions(trials=7, warmup_calls=0, idle_s=0.5)
    assert options.backend_options == BackendOptions(watts_per_core=4.5, trace_path=tmp_path / "t.json")
    assert AnalyzeOptions.from_flat() == AnalyzeOptions()


def test_unknown_flat_option_names_the_known_ones() -> None:
    with pytest.raises(MagnetonError, match=r"unknown analysis option 'trails'.*\btrials\b"):
        AnalyzeOptions.from_flat(trails=3)


def test_cli_defaults_are_the_options_defaults() -> None:
    """The CLI shows and passes PassOptions' defaults; it does not keep its own copy."""
    args = build_parser().parse_args(["analyze", "x.py:w"])
    defaults = PassOptions()
    assert args.trials == defaults.trials and args.warmup_calls == defaults.warmup_calls
    assert args.idle_s is None and args.min_window_s is None  # None: the pass picks from the backend


def test_cli_options_reach_the_analysis() -> None:
    args = build_parser().parse_args(
        ["analyze", "x.py:w", "--trials", "4", "--warmup-calls", "0", "--idle-s", "0.3", "--min-window-s", "0.05"]
    )
    from magneton.commands.analyze import analyze_options

    options = analyze_options(args)
    assert options.energy_pass == PassOptions(trials=4, warmup_calls=0, idle_s=0.3, min_window_s=0.05)


@pytest.mark.parametrize("flag", ["--trials=0", "--warmup-calls=-1", "--idle-s=0", "--min-window-s=-2"])
def test_cli_refuses_out_of_range_values(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["analyze", "x.py:w", flag])
    assert flag.split("=")[0] in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["auto", *BACKEND_NAMES])
def test_python_api_accepts_every_cli_backend(backend: str) -> None:
    from magneton.api import make_options

    assert make_options(backend=backend).backend == backend
