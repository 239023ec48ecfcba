"""Trace recording and deterministic replay: round trips through JSON, errors, provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from magneton.errors import BackendError, TraceError
from magneton.measure.backends import BackendOptions, create_backend
from magneton.measure.backends.base import BackendInfo, EnergyBackend, Provenance, WindowReading
from magneton.measure.backends.replay import (
    TRACE_SCHEMA,
    ReplayBackend,
    Trace,
    TraceRecorder,
    load_trace,
    write_trace,
)

KEY_MM = "aten.mm|f32[64,64]|f32[64,64]"
KEY_ODD = 'aten.add, "quoted"|f32[8]'  # commas and quotes must survive the file


class ScriptedBackend(EnergyBackend):
    """Returns pre-set window readings in order; runs what it is asked to measure."""

    name = "scripted"

    def __init__(self, readings: list[WindowReading], provenance: Provenance = "measured") -> None:
        self.readings = list(readings)
        self.provenance: Provenance = provenance
        self.closed = False

    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            provenance=self.provenance,
            sensor="scripted sensor",
            min_window_s=0.25,
            resolution_j=0.001,
            constants={"k": 1},
            notes=("a note",),
        )

    def open_window(self) -> Any:
        return None

    def close_window(self, window: Any) -> WindowReading:
        return self.readings.pop(0)

    def measure_idle(self, duration_s: float) -> WindowReading:
        return WindowReading(energy_j=40.0 * duration_s, time_s=duration_s)

    def close(self) -> None:
        self.closed = True


def record(provenance: Provenance = "measured") -> TraceRecorder:
    inner = ScriptedBackend(
        [
            WindowReading(2.0, 0.5),  # mm trial 0, 4 rounds -> 0.5 J, 0.125 s per call
            WindowReading(1.0, 0.25),  # odd trial 0, 2 rounds -> 0.5 J, 0.125 s
            WindowReading(3.0, 0.5),  # mm trial 1 -> 0.75 J, 0.125 s
        ],
        provenance,
    )
    recorder = TraceRecorder(inner)
    calls: list[str] = []
    assert recorder.measure(KEY_MM, lambda: calls.append("mm"), rounds=4) == WindowReading(2.0, 0.5)
    recorder.measure(KEY_ODD, lambda: calls.append("odd"), rounds=2)
    recorder.measure(KEY_MM, lambda: calls.append("mm"), rounds=4)
    assert calls == ["mm", "odd", "mm"]  # the recorder measures for real
    recorder.measure_idle(0.5)
    recorder.measure_idle(1.5)
    return recorder


def never_run() -> None:
    raise AssertionError("replay must not run the workload")


def test_record_write_replay_round_trip(tmp_path: Path) -> None:
    recorder = record()
    path = tmp_path / "trace.json"
    recorder.write(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind

    replay = ReplayBackend(path)
    assert replay.measure(KEY_MM, never_run, rounds=2) == WindowReading(1.0, 0.25)  # trial 0 x 2 rounds
    assert replay.measure(KEY_MM, never_run, rounds=2) == WindowReading(1.5, 0.25)  # trial 1
    assert replay.measure(KEY_MM, never_run, rounds=1) == WindowReading(0.5, 0.125)  # cycles to trial 0
    assert replay.measure(KEY_ODD, never_run, rounds=8) == WindowReading(4.0, 1.0)
    assert replay.measure_idle(2.0) == WindowReading(80.0, 2.0)  # recorded idle power is 40 W

    info = replay.info()
    assert info.name == "replay"
    assert info.provenance == "measured"
    assert info.sensor == "replay of trace.json (recorded with scripted sensor)"
    assert info.min_window_s == 0.0
    assert info.constants["recorded_backend"]["name"] == "scripted"


def test_trace_loads_to_what_was_recorded(tmp_path: Path) -> None:
    record().write(tmp_path / "t.json")
    trace = load_trace(tmp_path / "t.json")
    assert trace.idle_power_w == 40.0
    assert trace.measurements == {
        KEY_MM: (WindowReading(0.5, 0.125), WindowReading(0.75, 0.125)),
        KEY_ODD: (WindowReading(0.5, 0.125),),
    }


def test_json_file_layout(tmp_path: Path) -> None:
    record().write(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["schema"] == "magneton.trace/1"  # the file format's public name
    assert data["backend"]["sensor"] == "scripted sensor"
    assert data["idle_power_w"] == 40.0
    assert data["measurements"][KEY_MM] == [{"energy_j": 0.5, "time_s": 0.125}, {"energy_j": 0.75, "time_s": 0.125}]


def test_estimated_provenance_is_preserved(tmp_path: Path) -> None:
    record("estimated").write(tmp_path / "t.json")
    assert ReplayBackend(tmp_path / "t.json").info().provenance == "estimated"


def test_recorder_is_transparent() -> None:
    inner = ScriptedBackend([WindowReading(1.0, 2.0)])
    recorder = TraceRecorder(inner)
    assert recorder.name == "scripted"
    assert recorder.info() == inner.info()
    assert recorder.close_window(recorder.open_window()) == WindowReading(1.0, 2.0)
    assert recorder.trace().measurements == {}  # unkeyed windows are not attributed to anything
    recorder.close()
    assert inner.closed


def test_no_idle_measurement_replays_zero_idle(tmp_path: Path) -> None:
    recorder = TraceRecorder(ScriptedBackend([WindowReading(1.0, 1.0)]))
    recorder.measure("k", lambda: None, rounds=1)
    recorder.write(tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text())["idle_power_w"] is None
    assert ReplayBackend(tmp_path / "t.json").measure_idle(3.0) == WindowReading(0.0, 3.0)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    record().write(tmp_path / "t.json")
    replay = ReplayBackend(tmp_path / "t.json")
    with pytest.raises(TraceError) as err:
        replay.measure("aten.conv2d|f32[1,3,224,224]", never_run, rounds=1)
    message = str(err.value)
    assert "'aten.conv2d|f32[1,3,224,224]'" in message
    assert str(tmp_path / "t.json") in message
    assert "recorded for a different workload" in message


def test_replay_has_no_windows(tmp_path: Path) -> None:
    record().write(tmp_path / "t.json")
    replay = ReplayBackend(tmp_path / "t.json")
    with pytest.raises(BackendError, match="only supports keyed measurements"):
        replay.open_window()
    with pytest.raises(BackendError, match="only supports keyed measurements"):
        replay.close_window(None)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BACKEND = {"name": "nvml", "provenance": "measured", "sensor": "s"}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("t.json", "{not json", "is not valid JSON"),
        ("t.json", "[]", "expected a JSON object"),
        ("t.json", json.dumps({"schema": "other/2"}), "schema is 'other/2', expected 'magneton.trace/1'"),
        ("t.json", json.dumps({"schema": TRACE_SCHEMA, "measurements": {}}), "'backend' must be an object"),
        (
            "t.json",
            json.dumps({"schema": TRACE_SCHEMA, "backend": {**BACKEND, "provenance": "guessed"}, "measurements": {}}),
            "neither 'measured' nor 'estimated'",
        ),
        (
            "t.json",
            json.dumps({"schema": TRACE_SCHEMA, "backend": BACKEND, "measurements": {"k": []}}),
            "key 'k' must have a non-empty list of trials",
        ),
        (
            "t.json",
            json.dumps(
                {"schema": TRACE_SCHEMA, "backend": BACKEND, "measurements": {"k": [{"energy_j": "lots", "time_s": 1}]}}
            ),
            "energy_j must be a number, got 'lots'",
        ),
        (
            "t.json",
            json.dumps({"schema": TRACE_SCHEMA, "backend": BACKEND, "measurements": {"k": [{"energy_j": 1.0}]}}),
            "needs 'energy_j' and 'time_s'",
        ),
        ("t.csv", "# schema: magneton.trace/1\nkey,trial,energy_j,time_s\n", "traces are JSON only now"),
        ("t.trace", "# schema: magneton.trace/1\nkey,trial,energy_j,time_s\n", "traces are JSON only now"),
    ],
)
def test_malformed_trace_is_a_trace_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(TraceError) as err:
        ReplayBackend(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"does not exist \(write one with --record-trace\)"):
        ReplayBackend(tmp_path / "missing.json")


def test_any_name_loads_but_only_json_names_are_written(tmp_path: Path) -> None:
    trace = Trace(backend=BACKEND, idle_power_w=None, measurements={"k": (WindowReading(1.0, 2.0),)})
    write_trace(trace, tmp_path / "t.json")
    (tmp_path / "t.json").rename(tmp_path / "t.trace")
    assert load_trace(tmp_path / "t.trace") == trace
    for name in ("t.txt", "t.csv"):
        with pytest.raises(TraceError, match="traces are JSON, use a .json file name"):
            write_trace(trace, tmp_path / name)


def test_create_backend_replay(tmp_path: Path) -> None:
    record().write(tmp_path / "t.json")
    choice = create_backend("replay", BackendOptions(trace_path=tmp_path / "t.json"))
    assert isinstance(choice.backend, ReplayBackend)


def test_analysis_replays_a_recorded_run_exactly(tmp_path: Path) -> None:
    """End to end: an analysis recorded with the estimate backend replays to the same report."""
    import torch

    from magneton.pipeline import AnalyzeOptions, analyze_workload
    from magneton.workload import Workload

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval()
    workload = Workload(fn=model, args=(torch.randn(4, 16),))
    common: dict[str, Any] = {"trials": 3, "warmup_calls": 1, "idle_s": 0.02}
    trace = tmp_path / "run.json"
    recorded = analyze_workload(
        workload, "tiny", AnalyzeOptions.from_flat(backend="estimate", record_trace=trace, **common)
    ).to_dict()
    replayed = analyze_workload(
        workload, "tiny", AnalyzeOptions.from_flat(backend="replay", trace_path=trace, **common)
    ).to_dict()
    assert replayed["backend"]["provenance"] == "estimated"
    assert replayed["backend"]["sensor"].startswith("replay of run.json (recorded with none: process CPU time")
    assert [n["energy_j"] for n in replayed["nodes"]] == pytest.approx(
        [n["energy_j"] for n in recorded["nodes"]], rel=1e-12
    )
    assert replayed["total_energy_j"] == pytest.approx(recorded["total_energy_j"], rel=1e-12)
    assert replayed["idle_power_w"] == pytest.approx(recorded["idle_power_w"], rel=1e-12)


def test_hand_written_trace_gives_exact_report(tmp_path: Path) -> None:
    """A trace written by hand (not recorded) drives the whole analyze pipeline to known numbers."""
    import json

    import torch

    from magneton.capture import capture
    from magneton.measure.energy_pass import FORWARD_KEY
    from magneton.pipeline import AnalyzeOptions, analyze_workload
    from magneton.workload import Workload

    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval()
    workload = Workload(fn=model, args=(torch.randn(4, 16),))
    graph = capture(workload)
    linear = next(n for n in graph.nodes if n.op == "aten.linear.default")
    relu = next(n for n in graph.nodes if n.op == "aten.relu.default")
    trials = {linear.signature: [0.5, 0.25, 0.75], relu.signature: [0.125, 0.125, 0.125], FORWARD_KEY: [1.0, 2.0, 1.0]}
    trace = tmp_path / "hand.json"
    trace.write_text(
        json.dumps(
            {
                "schema": "magneton.trace/1",
                "backend": {
                    "name": "rapl",
                    "provenance": "measured",
                    "sensor": "RAPL powercap energy_uj (package-0)",
                    "min_window_s": 0.02,
                },
                "idle_power_w": 2.0,
                "measurements": {
                    key: [{"energy_j": e, "time_s": 0.0625} for e in values] for key, values in trials.items()
                },
            }
        )
    )
    report = analyze_workload(
        workload,
        "hand",
        AnalyzeOptions.from_flat(backend="replay", trace_path=trace, trials=3, warmup_calls=0, idle_s=0.5),
    ).to_dict()
    by_op = {n["op"]: n for n in report["nodes"]}
    assert by_op["aten.linear.default"]["energy_j"] == 0.5  # median of 0.5, 0.25, 0.75
    assert by_op["aten.linear.default"]["energy_ci_j"] == [0.25, 0.75]
    assert by_op["aten.relu.default"]["energy_j"] == 0.125
    assert by_op["aten.linear.default"]["active_energy_j"] == 0.5 - 2.0 * 0.0625
    assert report["total_energy_j"] == 1.0
    assert report["node_energy_sum_j"] == 0.625
    assert report["coverage"] == 0.625
    assert report["idle_power_w"] == 2.0
    assert report["backend"]["provenance"] == "measured"  # a replayed measurement is still a measurement
    assert by_op["aten.linear.default"]["share"] == 0.8
