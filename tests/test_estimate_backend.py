"""The estimate backend: energy = process CPU time x watts per core, always labelled estimated."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import magneton.measure.backends.cpu_power as cpu_power
import magneton.measure.backends.estimate as estimate
from magneton.errors import MagnetonError
from magneton.measure.backends import BackendOptions, create_backend
from magneton.measure.backends.cpu_power import (
    CPU_TDP_TABLE,
    DEFAULT_WATTS_PER_CORE,
    ENV_WATTS_PER_CORE,
    cpu_model_name,
    match_cpu,
    resolve_watts_per_core,
)
from magneton.measure.backends.estimate import EstimateBackend

XEON_8380 = "Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz"
UNKNOWN_CPU = "Intel(R) Xeon(R) Processor"


def scripted_clock(values: list[float]) -> Iterator[float]:
    return iter(values)


@pytest.fixture
def fake_clocks(monkeypatch: pytest.MonkeyPatch):
    """Replace the clocks the estimate backend reads with scripted ones."""

    def install(cpu: list[float], wall: list[float]) -> None:
        cpu_values, wall_values = scripted_clock(cpu), scripted_clock(wall)
        fake_time = SimpleNamespace(
            process_time=lambda: next(cpu_values),
            perf_counter=lambda: next(wall_values),
            clock_getres=time.clock_getres,
            CLOCK_PROCESS_CPUTIME_ID=time.CLOCK_PROCESS_CPUTIME_ID,
        )
        monkeypatch.setattr(estimate, "time", fake_time)

    return install


@pytest.fixture
def cpu_is(monkeypatch: pytest.MonkeyPatch):
    def set_model(model: str) -> None:
        monkeypatch.setattr(cpu_power, "_cached_model", lambda: model)

    return set_model


# --- arithmetic ---------------------------------------------------------------------------------------


def test_window_energy_is_cpu_seconds_times_watts(fake_clocks) -> None:
    backend = EstimateBackend(watts_per_core=8.0)
    fake_clocks(cpu=[10.0, 10.75], wall=[100.0, 100.5])
    window = backend.open_window()
    reading = backend.close_window(window)
    assert reading.energy_j == 0.75 * 8.0
    assert reading.time_s == 0.5


def test_measure_counts_all_cpu_time_not_wall_time(fake_clocks) -> None:
    # Two busy threads for 0.25 s of wall time: 0.5 s of process CPU time.
    backend = EstimateBackend(watts_per_core=6.5)
    fake_clocks(cpu=[1.0, 1.5], wall=[50.0, 50.25])
    calls = []
    reading = backend.measure("aten.mm.default(...)", lambda: calls.append(1), rounds=4)
    assert calls == [1]
    assert reading.energy_j == 0.5 * 6.5
    assert reading.time_s == 0.25


def test_idle_window_spends_no_energy(fake_clocks) -> None:
    backend = EstimateBackend(watts_per_core=7.0)
    fake_clocks(cpu=[3.0, 3.0], wall=[0.0, 0.125])
    reading = backend.measure_idle(0.0)
    assert (reading.energy_j, reading.time_s) == (0.0, 0.125)


def test_real_clock_busy_window_is_positive() -> None:
    backend = EstimateBackend(watts_per_core=5.0)

    def spin() -> None:
        end = time.process_time() + 0.01
        while time.process_time() < end:
            pass

    reading = backend.measure("spin", spin, 1)
    assert reading.energy_j >= 0.01 * 5.0 * 0.99
    assert reading.time_s > 0


# --- watts per core: override > environment > table > default ------------------------------------------


def test_cli_override_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_WATTS_PER_CORE, "7")
    power = resolve_watts_per_core(12.5, model=XEON_8380)
    assert power.watts == 12.5
    assert power.origin == "override:--cpu-watts-per-core"
    assert power.cpu_model == XEON_8380


def test_environment_wins_over_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGNETON_CPU_WATTS_PER_CORE", "7.5")  # the name the README documents
    power = resolve_watts_per_core(None, model=XEON_8380)
    assert power.watts == 7.5
    assert power.origin == "override:MAGNETON_CPU_WATTS_PER_CORE"


def test_empty_environment_value_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_WATTS_PER_CORE, "")
    assert resolve_watts_per_core(None, model=XEON_8380).origin == "table"


def test_table_match_for_brand_string() -> None:
    power = resolve_watts_per_core(None, model=XEON_8380)
    assert power.watts == 270 / 40
    assert power.origin == "table"
    assert power.detail.startswith("TDP 270 W / 40 cores (https://")


@pytest.mark.parametrize(
    ("model", "watts"),
    [
        ("AMD EPYC 7763 64-Core Processor", 280 / 64),
        ("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", 150 / 20),
        ("Intel(R) Core(TM) i9-13900K", 125 / 24),
    ],
)
def test_table_matches_other_vendors(model: str, watts: float) -> None:
    assert resolve_watts_per_core(None, model=model).watts == watts


def test_table_patterns_do_not_match_neighbouring_models() -> None:
    assert match_cpu("Intel(R) Xeon(R) Platinum 83800") is None
    assert match_cpu("Intel(R) Xeon(R) Platinum 8380HL CPU") is None
    spec = match_cpu("Intel(R) Xeon(R) Platinum 8480+")
    assert spec is not None and (spec.tdp_w, spec.cores) == (350, 56)


def test_unknown_cpu_gets_median_of_table() -> None:
    power = resolve_watts_per_core(None, model=UNKNOWN_CPU)
    expected = round(statistics.median(spec.tdp_w / spec.cores for spec in CPU_TDP_TABLE), 2)
    assert expected == DEFAULT_WATTS_PER_CORE
    assert power.watts == expected
    assert power.origin == "default"
    assert power.detail == f"CPU model not in the TDP table; median W/core of {len(CPU_TDP_TABLE)} listed server CPUs"


@pytest.mark.parametrize("value", ["abc", "7W", "1,5"])
def test_bad_environment_value_is_an_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_WATTS_PER_CORE, value)
    with pytest.raises(MagnetonError) as info:
        resolve_watts_per_core(None, model=XEON_8380)
    assert str(info.value) == f"{ENV_WATTS_PER_CORE}={value!r} is not a number of watts"


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf"])
def test_non_positive_environment_value_is_an_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_WATTS_PER_CORE, value)
    with pytest.raises(MagnetonError, match=f"{ENV_WATTS_PER_CORE} must be a finite, positive number of watts"):
        resolve_watts_per_core(None, model=XEON_8380)


def test_non_positive_override_is_an_error() -> None:
    with pytest.raises(MagnetonError, match="--cpu-watts-per-core must be a finite, positive number of watts, got 0"):
        resolve_watts_per_core(0, model=XEON_8380)


def test_backend_resolves_through_detected_cpu(cpu_is, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_is(XEON_8380)
    assert EstimateBackend().power.watts == 6.75
    monkeypatch.setenv(ENV_WATTS_PER_CORE, "4")
    assert EstimateBackend().power.watts == 4.0
    assert EstimateBackend(watts_per_core=9.0).power.watts == 9.0


def test_cpu_model_name_reads_proc_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cpuinfo", None)  # py-cpuinfo unavailable: fall back to the file
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: {XEON_8380}\nflags\t: fpu\n")
    assert cpu_model_name(cpuinfo) == XEON_8380
    assert cpu_model_name(tmp_path / "missing") == "unknown CPU"


# --- provenance ---------------------------------------------------------------------------------------------


def test_info_is_estimated_with_formula_and_constants(cpu_is) -> None:
    cpu_is(XEON_8380)
    info = EstimateBackend().info()
    assert info.name == "estimate"
    assert info.provenance == "estimated"
    assert info.sensor.startswith("none: ")
    assert info.formula == "energy_j = process_cpu_time_s * watts_per_core"
    assert dict(info.constants) == {
        "watts_per_core": 6.75,
        "watts_per_core_origin": "table",
        "cpu_model": XEON_8380,
        "detail": "TDP 270 W / 40 cores (https://ark.intel.com/content/www/us/en/ark/products/212287.html)",
    }
    # CPU-time windows: the clock's resolution is a negligible share of the shortest window.
    assert time.clock_getres(time.CLOCK_PROCESS_CPUTIME_ID) / info.min_window_s < 1e-3
    assert info.resolution_j == 6.75 * time.clock_getres(time.CLOCK_PROCESS_CPUTIME_ID)
    assert info.notes == ("estimated from CPU time; no energy sensor was read",)
    as_json = info.to_json()
    assert as_json["provenance"] == "estimated" and as_json["constants"]["watts_per_core"] == 6.75


def test_create_backend_estimate_passes_override() -> None:
    choice = create_backend("estimate", BackendOptions(watts_per_core=3.25))
    assert isinstance(choice.backend, EstimateBackend)
    assert choice.backend.power.watts == 3.25
    assert choice.reason == "requested with --backend estimate"
    assert choice.warnings == ()


def test_auto_falls_back_to_estimate_without_sensors(tmp_path: Path) -> None:
    choice = create_backend("auto", BackendOptions(device="cpu", powercap_root=tmp_path / "no-powercap"))
    assert isinstance(choice.backend, EstimateBackend)
    assert choice.backend.info().provenance == "estimated"
    assert choice.reason == "auto: no readable sensor, estimate is the fallback"
    assert len(choice.warnings) == 2
    assert choice.warnings[0].startswith("rapl unavailable: ")
    assert choice.warnings[1].startswith("no energy sensor readable: falling back to the estimate backend")


def test_unknown_backend_name() -> None:
    with pytest.raises(MagnetonError, match="unknown backend 'joulemeter'"):
        create_backend("joulemeter", BackendOptions())
