"""Self-timed windows, adaptive trials, page faults and contention per window."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import magneton.measure.energy_pass as energy_pass
from magneton.capture import capture
from magneton.measure.backends.estimate import EstimateBackend
from magneton.measure.contention import Counters, WindowStats, page_fault_cost_s, read_counters, window_stats
from magneton.measure.drift import REFERENCE_WINDOW_S
from magneton.measure.energy_pass import FORWARD_KEY, PassOptions, run_energy_pass
from magneton.workload import Workload


class Chain(nn.Module):
    """Operators from sub-microsecond (a tiny add) to tens of microseconds (a matmul)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x) + 1.0
        return torch.relu(y).sum(dim=0)


def chain_workload() -> Workload:
    return Workload(Chain().eval(), (torch.randn(32, 64),))


class WindowLog(EstimateBackend):
    """The estimate backend, remembering the wall time of every window it closed."""

    def __init__(self) -> None:
        super().__init__(watts_per_core=10.0)
        self.windows_s: list[float] = []

    def close_window(self, window):
        reading = super().close_window(window)
        self.windows_s.append(reading.time_s)
        return reading


def test_no_window_ends_below_its_minimum() -> None:
    workload = chain_workload()
    graph = capture(workload)
    backend = WindowLog()
    min_window_s, forward_window_s = 0.004, 0.01
    options = PassOptions(
        trials=3,
        min_trials=3,
        min_window_s=min_window_s,
        forward_window_s=forward_window_s,
        idle_s=0.001,
        replay_working_set_bytes=2**20,
    )
    result = run_energy_pass(graph, workload, backend, options)
    assert len(backend.windows_s) == 1 + result.contention.windows  # the idle window first
    assert min(backend.windows_s[1:]) >= min_window_s
    # The floor: the idle window plus every window at exactly its minimum, the drift reference's included.
    references = len(result.drift.readings_s) if result.drift else 0
    floor_s = 0.001 + 3 * forward_window_s + 3 * result.unique_signatures * min_window_s
    floor_s += references * REFERENCE_WINDOW_S
    assert floor_s - 1e-9 <= result.floor_s <= floor_s + result.contention.remeasured_windows * forward_window_s + 1e-9


def test_window_that_would_end_short_is_extended(fake_backend_cls) -> None:
    # Planned calls that fill only a fraction of the window: the window runs on until the minimum.
    backend = EstimateBackend(watts_per_core=1.0)
    calls = []
    reading, done = backend.measure_timed("k", lambda: calls.append(1), rounds=1, min_window_s=0.01, max_rounds=10**9)
    assert reading.time_s >= 0.01 and done == len(calls) > 1
    # max_rounds caps a batch, never the window.
    reading, done = backend.measure_timed("k", lambda: None, rounds=1, min_window_s=0.01, max_rounds=5)
    assert reading.time_s >= 0.01 and done > 5


def test_adaptive_trials_stop_tight_keys_and_continue_wide_ones(fake_backend_cls, energy_per_call) -> None:
    workload = chain_workload()
    graph = capture(workload)
    noisy = next(node.signature for node in graph.nodes if node.op == "aten.relu.default")
    swing = itertools.cycle([1.0, 3.0])

    def per_call(key: str) -> float:
        return next(swing) if key == noisy else energy_per_call(key)

    backend = fake_backend_cls(energy_per_call=per_call, min_window_s=0.001)
    options = PassOptions(
        trials=6,
        min_trials=3,
        idle_s=0.0,
        forward_window_s=0.001,
        replay_working_set_bytes=0,
        remeasure_contended=False,
    )
    result = run_energy_pass(graph, workload, backend, options)
    windows = {key: sum(1 for k, _ in backend.measured if k == key) for key, _ in backend.measured}
    assert windows.pop(noisy) == 6  # wide interval: up to the most trials
    assert set(windows.values()) == {3}  # tight: stopped at the minimum number of trials
    assert windows[FORWARD_KEY] == 3
    assert result.trials == 6 and result.min_trials == 3
    relu = next(n for n in graph.nodes if n.signature == noisy)
    assert len(result.nodes[relu.id].energy_j.samples) == 6
    assert result.nodes[relu.id].energy_j.confidence == pytest.approx(1 - 2 / 64)  # [min, max] of 6


def test_min_trials_never_exceed_trials(fake_backend_cls) -> None:
    workload = chain_workload()
    graph = capture(workload)
    options = PassOptions(trials=2, idle_s=0.0, min_window_s=0.001, forward_window_s=0.001, remeasure_contended=False)
    result = run_energy_pass(graph, workload, fake_backend_cls(min_window_s=0.001), options)
    assert result.trials == 2 and result.min_trials == 2


def _counters(wall_s: float, cpu_s: float, minor: int, delay_ns: int, busy: int, total: int) -> Counters:
    return Counters(wall_s, cpu_s, minor, 0, delay_ns, busy, total)


def test_window_stats_from_counters(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    before = _counters(10.0, 5.0, 100, 1_000_000, 1000, 2000)
    after = _counters(10.1, 5.1, 160, 31_000_000, 1180, 2200)  # 0.1 s: 60 faults, 30 ms waiting
    stats = window_stats(before, after)
    assert stats.minor_faults == 60
    assert stats.run_delay_s == pytest.approx(0.03)
    assert stats.run_delay_s_per_s == pytest.approx(0.3)
    assert stats.contended
    # The machine was 90% busy on 2 cores = 1.8 cores, 1 of them ours: others kept 0.8 busy.
    assert stats.others_busy_cores == pytest.approx(0.8)
    quiet = window_stats(before, _counters(10.1, 5.1, 100, 1_500_000, 1100, 2200))
    assert not quiet.contended


def test_read_counters_on_linux() -> None:
    counters = read_counters()
    if counters.run_delay_ns is None:
        pytest.skip("no /proc/self/task/*/schedstat here")
    assert counters.run_delay_ns >= 0 and counters.machine_total_jiffies


def test_page_faults_are_counted_per_window_and_call() -> None:
    class Fresh(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(8 * 2**20, dtype=torch.uint8).add_(1) + x.sum().to(torch.uint8)  # 8 MiB each call

    workload = Workload(Fresh(), (torch.randn(4),))
    graph = capture(workload)
    options = PassOptions(trials=1, min_window_s=0.005, forward_window_s=0.005, idle_s=0.0, replay_working_set_bytes=0)
    result = run_energy_pass(graph, workload, EstimateBackend(watts_per_core=10.0), options)
    assert result.forward_minor_faults_per_call >= 0
    assert result.page_fault_cost_s > 0
    assert 0.0 <= result.forward_fault_time_share <= 1.0
    for measured in result.nodes.values():
        if measured is not None:
            assert measured.minor_faults_per_call >= 0 and 0.0 <= measured.fault_time_share <= 1.0


def test_page_fault_cost_is_microseconds() -> None:
    assert 1e-8 < page_fault_cost_s(pages=512) < 1e-3


def test_contended_window_is_measured_again_and_the_trace_keeps_the_kept_one(monkeypatch, fake_backend_cls) -> None:
    busy = WindowStats(wall_s=0.02, minor_faults=0, major_faults=0, run_delay_s=0.01, others_busy_cores=1.0)
    quiet = WindowStats(wall_s=0.02, minor_faults=0, major_faults=0, run_delay_s=0.0, others_busy_cores=0.0)
    sequence = itertools.chain([busy, quiet], itertools.repeat(quiet))
    monkeypatch.setattr(energy_pass, "window_stats", lambda before, after: next(sequence))
    discarded = []

    class Recording(fake_backend_cls):
        contention_sensitive = True  # as a sensor is: its contended windows are worth measuring again

        def discard_window(self, key, from_end):
            discarded.append((key, from_end))

    workload = chain_workload()
    graph = capture(workload)
    backend = Recording(min_window_s=0.001)
    result = run_energy_pass(graph, workload, backend, PassOptions(trials=1, idle_s=0.0, forward_window_s=0.001))
    keys = [key for key, _ in backend.measured]
    assert keys[:2] == [FORWARD_KEY, FORWARD_KEY]  # the contended first window, then its re-measurement
    assert discarded == [(FORWARD_KEY, 2)]  # the quieter retry is kept
    assert result.contention.remeasured_windows == 1
    assert result.contention.contended_windows == 0


def test_persistently_contended_nodes_are_flagged(monkeypatch, fake_backend_cls) -> None:
    busy = WindowStats(wall_s=0.02, minor_faults=0, major_faults=0, run_delay_s=0.01, others_busy_cores=1.0)
    monkeypatch.setattr(energy_pass, "window_stats", lambda before, after: busy)
    workload = chain_workload()
    graph = capture(workload)
    options = PassOptions(trials=3, idle_s=0.0, forward_window_s=0.001, max_remeasure_share=0.0)
    result = run_energy_pass(graph, workload, fake_backend_cls(min_window_s=0.001), options)
    assert result.contention.remeasured_windows <= 4  # bounded
    assert all(m.contended for m in result.nodes.values() if m is not None)
    assert result.contention.warning is not None and "busy machine" in result.contention.warning


@pytest.mark.parametrize("remeasure", [True, False])
def test_a_node_with_any_contended_window_is_flagged(monkeypatch, fake_backend_cls, remeasure) -> None:
    # One contended window in the second trial, for the first operator measured in it. Re-measured, the
    # retry is quieter and kept; the flag stays: the retry ran on the same busy machine. Not re-measured,
    # one window in three is enough to move a median of few samples.
    busy = WindowStats(wall_s=0.02, minor_faults=0, major_faults=0, run_delay_s=0.01, others_busy_cores=1.0)
    quiet = WindowStats(wall_s=0.02, minor_faults=0, major_faults=0, run_delay_s=0.0, others_busy_cores=0.0)
    measured_keys: list[str] = []
    window = energy_pass._Timer._window

    def logging_window(self, key, *args, **kwargs):
        measured_keys.append(key)
        return window(self, key, *args, **kwargs)

    workload = chain_workload()
    graph = capture(workload)
    signatures = [n.signature for n in graph.nodes if not n.zero_cost]
    windows_per_trial = 1 + len(dict.fromkeys(signatures))  # the whole pass, then each signature once
    contended_window = windows_per_trial + 1  # the second trial's first operator window (0-based)
    count = itertools.count()
    monkeypatch.setattr(
        energy_pass, "window_stats", lambda before, after: busy if next(count) == contended_window else quiet
    )
    monkeypatch.setattr(energy_pass._Timer, "_window", logging_window)

    class Sensor(fake_backend_cls):
        contention_sensitive = True

    options = PassOptions(trials=3, min_trials=3, idle_s=0.0, forward_window_s=0.001, remeasure_contended=remeasure)
    result = run_energy_pass(graph, workload, Sensor(min_window_s=0.001), options)
    hit = measured_keys[contended_window]
    assert hit != FORWARD_KEY
    flagged = {n.signature for n in graph.nodes if (m := result.nodes[n.id]) is not None and m.contended}
    assert flagged == {hit}
    assert result.contention.remeasured_windows == (1 if remeasure else 0)
    assert result.contention.contended_windows == (0 if remeasure else 1)  # kept windows only
