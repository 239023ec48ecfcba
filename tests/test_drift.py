"""Machine drift: a thread-synchronisation reference timed once per trial, reported and warned about."""

from __future__ import annotations

import json

import msgspec
import pytest
import torch
from report_samples import HOSTILE_CODE, sample_report

from magneton.measure import drift as drift_module
from magneton.measure.drift import DRIFT_WARNING_SPREAD, REFERENCE, DriftSummary, SyncReference
from magneton.report.model import MachineDrift


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_a_steady_machine_gives_no_warning() -> None:
    steady = DriftSummary(REFERENCE, [10.0e-6, 10.6e-6, 11.0e-6], DRIFT_WARNING_SPREAD)
    assert steady.spread == pytest.approx(0.10)
    assert steady.warning is None
    assert DriftSummary(REFERENCE, [10e-6], DRIFT_WARNING_SPREAD).warning is None  # one reading: no spread


def test_a_host_phase_change_is_warned_about_with_its_size() -> None:
    # The VM this was built on: 10-11 us per reference call in its fast phases, 15-16 us in its slow ones.
    moved = DriftSummary(REFERENCE, [10.2e-6, 10.4e-6, 15.8e-6], DRIFT_WARNING_SPREAD)
    assert moved.spread == pytest.approx(15.8 / 10.2 - 1)
    assert moved.warning is not None
    assert "55%" in moved.warning and "10.2-15.8 us" in moved.warning and "another run" in moved.warning


def test_the_reference_runs_only_where_threads_synchronise(two_threads) -> None:
    assert SyncReference.for_device("cuda:0") is None
    assert isinstance(SyncReference.for_device("cpu"), SyncReference)
    torch.set_num_threads(1)
    assert SyncReference.for_device("cpu") is None  # one thread: no barrier to time


def test_a_reading_is_cpu_time_per_call(two_threads) -> None:
    reference = SyncReference()
    reading = reference.read()
    assert 0 < reading < 0.01  # microseconds on any CPU; never a whole window
    assert reference.readings_s == [reading]
    summary = reference.summary()
    assert summary is not None and summary.readings_s == [reading]


def test_the_energy_pass_reads_the_reference_once_per_trial(
    two_threads, fake_backend_cls, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magneton.capture import capture
    from magneton.measure import energy_pass
    from magneton.measure.options import PassOptions
    from magneton.workload import Workload

    readings = iter([10e-6, 11e-6, 16e-6, 10e-6])

    def fake_read(self: SyncReference) -> float:
        value = next(readings)
        self.readings_s.append(value)
        return value

    monkeypatch.setattr(drift_module.SyncReference, "read", fake_read)

    class MachineBackend(fake_backend_cls):  # type: ignore[misc, valid-type]
        contention_sensitive = True  # a real machine, whose speed can move

    workload = Workload(torch.nn.ReLU(), (torch.randn(8),))
    options = PassOptions(trials=3, min_trials=3, warmup_calls=0, min_window_s=0.001, idle_s=0.0)
    result = energy_pass.run_energy_pass(capture(workload), workload, MachineBackend(), options)
    assert result.drift is not None
    assert result.drift.readings_s == [10e-6, 11e-6, 16e-6][: result.trials]
    assert result.trials == 3 and result.drift.warning is not None

    replayed = energy_pass.run_energy_pass(capture(workload), workload, fake_backend_cls(), options)
    assert replayed.drift is None  # a deterministic (or replayed) backend: there is no machine to watch


def _drifted() -> MachineDrift:
    from magneton.report.build import machine_drift

    drift = machine_drift(DriftSummary(REFERENCE, [10e-6, 16e-6], DRIFT_WARNING_SPREAD))
    assert drift is not None
    return drift


def test_the_terminal_header_shows_the_drift_and_its_warning() -> None:
    from tests.golden.report_fixture import golden_report, render

    text = render(120, msgspec.structs.replace(golden_report(), machine_drift=_drifted()))
    assert "sync drift" in text and "60% across 2 trials" in text
    assert "the host moved its virtual CPUs" in " ".join(text.split())


def test_the_html_report_warns_about_drift_and_escapes_it() -> None:
    from magneton.report.html import render_html

    report = sample_report(layers=1)
    report["machine_drift"] = json.loads(msgspec.json.encode(_drifted()))
    page = render_html(report)
    assert 'id="drift-warning"' in page and "host moved its virtual CPUs" in page
    report["machine_drift"]["warning"] = HOSTILE_CODE
    page = render_html(report)
    assert "<b>bold</b>" not in page.split('id="drift-warning"')[1].split("</div>")[0]
    del report["machine_drift"]
    assert 'id="drift-warning"' not in render_html(report)
