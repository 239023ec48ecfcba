"""The energy pass: per-call division, signature dedupe, zero-cost nodes, forward and coverage; stats."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import magneton.measure.energy_pass as energy_pass
from magneton.capture import capture
from magneton.graph import OpGraph
from magneton.measure.backends.estimate import EstimateBackend
from magneton.measure.energy_pass import FORWARD_KEY, PassOptions, operand_copies, run_energy_pass
from magneton.measure.stats import spearman, summarize
from magneton.workload import Workload

# One operand copy: the arithmetic below is per replayed call (copy rotation is tested on its own).
# No re-measuring of contended windows: the tests check which windows are taken, and the machine may be busy.
FAST = PassOptions(
    trials=3,
    warmup_calls=1,
    min_window_s=0.001,
    forward_window_s=0.001,
    idle_s=0.0,
    replay_working_set_bytes=0,
    remeasure_contended=False,
)


class Mixed(nn.Module):
    """Two calls of one Linear on equal-shaped inputs, a view, a copy and a scalar op."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = self.lin(x)
        b = self.lin(y)
        t = (a + b).transpose(0, 1)
        return t.contiguous() * 2


def mixed_workload() -> Workload:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Workload(Mixed().eval(), (torch.randn(4, 8), torch.randn(4, 8)))


@pytest.fixture(scope="module")
def mixed() -> tuple[Workload, OpGraph]:
    workload = mixed_workload()
    return workload, capture(workload)


def unique_measured_signatures(graph: OpGraph) -> list[str]:
    seen: list[str] = []
    for node in graph.nodes:
        if not node.zero_cost and node.signature not in seen:
            seen.append(node.signature)
    return seen


def test_mixed_graph_shape(mixed: tuple[Workload, OpGraph]) -> None:
    _, graph = mixed
    assert [(node.id, node.zero_cost) for node in graph.nodes] == [
        ("linear", False),
        ("linear_1", False),
        ("add", False),
        ("transpose", True),
        ("contiguous", False),
        ("mul", False),
    ]
    assert graph.node("linear").signature == graph.node("linear_1").signature
    assert len(unique_measured_signatures(graph)) == 4


# --- with a deterministic fake backend -------------------------------------------------------------


def test_each_signature_measured_once_per_trial_and_forward_every_trial(mixed, fake_backend_cls) -> None:
    workload, graph = mixed
    backend = fake_backend_cls()
    result = run_energy_pass(graph, workload, backend, FAST)
    keys = [key for key, _ in backend.measured]
    # Interleaved: each trial measures the whole forward pass, then each signature once, in program order.
    assert keys == ([FORWARD_KEY, *unique_measured_signatures(graph)]) * FAST.trials
    assert result.unique_signatures == 4
    assert result.trials == 3
    assert backend.idle_requests == [0.0]


def test_per_call_energy_is_window_divided_by_rounds(mixed, fake_backend_cls, energy_per_call) -> None:
    workload, graph = mixed
    backend = fake_backend_cls()
    result = run_energy_pass(graph, workload, backend, FAST)
    rounds_by_key = {}
    for key, rounds in backend.measured:
        rounds_by_key.setdefault(key, set()).add(rounds)
    for node in graph.nodes:
        measured = result.nodes[node.id]
        if node.zero_cost:
            continue
        assert measured is not None
        (rounds,) = rounds_by_key[node.signature]  # calibrated once, the same every trial
        assert rounds > 1, "the window must hold several calls for the division to mean anything"
        assert measured.rounds == rounds
        k = energy_per_call(node.signature)
        assert measured.energy_j.samples == (k,) * FAST.trials
        assert (measured.energy_j.median, measured.energy_j.low, measured.energy_j.high) == (k, k, k)
        assert measured.time_s.median == fake_backend_cls.TIME_PER_CALL_S
        assert result.node_energy_j(node.id) == k
    assert result.forward_energy_j.samples == (1000.0,) * FAST.trials
    assert result.forward_time_s.median == fake_backend_cls.TIME_PER_CALL_S
    assert result.idle_power_w == 0.5 / 0.25


def test_zero_cost_nodes_are_never_measured(mixed, fake_backend_cls) -> None:
    workload, graph = mixed
    backend = fake_backend_cls()
    result = run_energy_pass(graph, workload, backend, FAST)
    transpose = graph.node("transpose")
    assert transpose.zero_cost_reason == "view: output aliases an input"
    assert result.nodes["transpose"] is None
    assert result.node_energy_j("transpose") == 0.0
    assert transpose.signature not in {key for key, _ in backend.measured}


def test_equal_signatures_share_one_measurement(mixed, fake_backend_cls) -> None:
    workload, graph = mixed
    result = run_energy_pass(graph, workload, fake_backend_cls(), FAST)
    first, second = result.nodes["linear"], result.nodes["linear_1"]
    assert first is not None and second is not None
    assert first.measured_as == "linear" and second.measured_as == "linear"
    assert first.energy_j == second.energy_j and first.time_s == second.time_s
    assert result.nodes["add"].measured_as == "add"


def test_coverage_is_node_sum_over_forward_energy(mixed, fake_backend_cls, energy_per_call) -> None:
    workload, graph = mixed
    result = run_energy_pass(graph, workload, fake_backend_cls(), FAST)
    expected_sum = 0.0
    for node in graph.nodes:  # duplicates count once per call: both linears ran
        expected_sum += 0.0 if node.zero_cost else energy_per_call(node.signature)
    assert result.node_sum_j == expected_sum
    assert result.forward_energy_j.median == 1000.0
    assert result.coverage == expected_sum / 1000.0


def test_coverage_is_nan_without_forward_energy(mixed, fake_backend_cls) -> None:
    workload, graph = mixed
    backend = fake_backend_cls(energy_per_call=lambda key: 0.0 if key == FORWARD_KEY else 1.0)
    result = run_energy_pass(graph, workload, backend, FAST)
    assert result.node_sum_j == 5.0
    assert math.isnan(result.coverage)


def test_min_window_defaults_to_backend_and_rounds_are_capped(mixed, fake_backend_cls) -> None:
    workload, graph = mixed
    backend = fake_backend_cls(min_window_s=0.5)
    options = PassOptions(
        trials=1, warmup_calls=0, max_rounds=3, idle_s=0.0, replay_working_set_bytes=0, remeasure_contended=False
    )
    result = run_energy_pass(graph, workload, backend, options)
    assert result.min_window_s == 0.5
    assert {rounds for _, rounds in backend.measured} == {3}
    assert all(measured.rounds == 3 for measured in result.nodes.values() if measured is not None)


def test_trials_must_be_positive(mixed, fake_backend_cls) -> None:
    workload, graph = mixed
    with pytest.raises(ValueError, match="trials must be >= 1"):
        run_energy_pass(graph, workload, fake_backend_cls(), PassOptions(trials=0))


def test_piecewise_graph_is_measured_across_pieces(fake_backend_cls) -> None:
    class Child(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.lin(x))

    class Serialises(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = Child(), Child()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            buffer = io.BytesIO()
            torch.save(self.a(x), buffer)
            buffer.seek(0)
            return self.b(torch.load(buffer))

    workload = Workload(Serialises().eval(), (torch.randn(4, 8),))
    graph = capture(workload)
    assert graph.method == "piecewise"
    backend = fake_backend_cls()
    result = run_energy_pass(
        graph,
        workload,
        backend,
        PassOptions(trials=2, min_window_s=0.001, forward_window_s=0.001, idle_s=0.0, remeasure_contended=False),
    )
    # a/linear and b/linear have one signature (as do the relus): measured once per trial, shared.
    assert [key for key, _ in backend.measured] == [
        FORWARD_KEY,
        graph.node("a/linear").signature,
        graph.node("a/relu").signature,
    ] * 2
    assert result.nodes["b/linear"].measured_as == "a/linear"
    assert result.nodes["b/relu"].measured_as == "a/relu"
    assert result.unique_signatures == 2


# --- in-place replay --------------------------------------------------------------------------------


class InPlaceOnIntermediate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        y.add_(1)
        z = torch.relu_(y * 2)
        return z + y


def _graph_outputs_during_pass(monkeypatch, workload: Workload, graph: OpGraph, backend) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    real_run_piece = energy_pass.run_piece

    def recording_run_piece(interpreter, piece):
        out = real_run_piece(interpreter, piece)
        outputs.append(out[0].clone())
        return out

    monkeypatch.setattr(energy_pass, "run_piece", recording_run_piece)
    run_energy_pass(
        graph,
        workload,
        backend,
        PassOptions(trials=2, min_window_s=0.001, forward_window_s=0.001, idle_s=0.0, remeasure_contended=False),
    )
    return outputs


@pytest.fixture
def in_place() -> tuple[Workload, OpGraph, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        workload = Workload(InPlaceOnIntermediate().eval(), (torch.randn(4, 8),))
    graph = capture(workload)
    assert [node.op for node in graph.nodes if node.mutates] == ["aten.add_.Tensor", "aten.relu_.default"]
    with torch.no_grad():
        eager = workload.fn(*workload.args).clone()
    return workload, graph, eager


def test_in_place_replay_does_not_corrupt_the_real_run(monkeypatch, fake_backend_cls, in_place) -> None:
    workload, graph, eager = in_place
    x_before = workload.args[0].clone()
    backend = fake_backend_cls()
    outputs = _graph_outputs_during_pass(monkeypatch, workload, graph, backend)
    add_rounds = [rounds for key, rounds in backend.measured if key == graph.node("add_").signature]
    assert add_rounds and all(rounds > 1 for rounds in add_rounds)  # add_ really was replayed many times
    assert len(outputs) == 2
    for output in outputs:
        torch.testing.assert_close(output, eager, rtol=0, atol=0)
    assert torch.equal(workload.args[0], x_before)


def test_in_place_check_is_sensitive(monkeypatch, fake_backend_cls, in_place) -> None:
    """Without the clone, replaying add_ would corrupt the real run: the test above would notice."""
    workload, graph, eager = in_place
    monkeypatch.setattr(energy_pass, "_clone_tensors", lambda value: value)
    outputs = _graph_outputs_during_pass(monkeypatch, workload, graph, fake_backend_cls())
    assert not torch.allclose(outputs[0], eager)


def test_inputs_mutated_by_the_program_are_restored(fake_backend_cls) -> None:
    class ScalesInput(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x.mul_(2)
            return x + 1

    x = torch.ones(4)
    workload = Workload(ScalesInput(), (x,))
    graph = capture(workload)
    run_energy_pass(graph, workload, fake_backend_cls(), PassOptions(trials=1, min_window_s=0.001, idle_s=0.0))
    assert torch.equal(x, torch.ones(4))


def test_restoring_mutated_inputs_is_kept_out_of_the_whole_pass(fake_backend_cls) -> None:
    """The copy-back before each run is measured alone and subtracted; the result says so."""

    class ScalesInput(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x.mul_(2)
            return x + 1

    def per_call(key: str) -> float:
        return {energy_pass.FORWARD_KEY: 1000.0, energy_pass.RESTORE_KEY: 100.0}.get(key, 1.0)

    workload = Workload(ScalesInput(), (torch.ones(4),))
    graph = capture(workload)
    backend = fake_backend_cls(energy_per_call=per_call)
    options = PassOptions(trials=2, min_window_s=0.001, forward_window_s=0.001, idle_s=0.0, remeasure_contended=False)
    result = run_energy_pass(graph, workload, backend, options)
    keys = [key for key, _ in backend.measured]
    assert keys.count(energy_pass.RESTORE_KEY) == keys.count(energy_pass.FORWARD_KEY) >= 1  # beside each pass
    assert result.forward_energy_j.median == 900.0
    assert result.input_restore_energy_j is not None and result.input_restore_energy_j.median == 100.0
    assert any("measured on its own" in note and "subtracted" in note for note in result.notes)

    from magneton.measure.backends import BackendChoice
    from magneton.report.build import build_report

    report = build_report("t", graph, result, BackendChoice(backend, "test double"), PassOptions())
    assert report.input_restore_energy_j == 100.0 and report.total_energy_j == 900.0
    assert any("subtracted from the whole-pass energy" in note for note in report.measurement_notes)


def test_programs_that_leave_their_inputs_alone_restore_nothing(fake_backend_cls) -> None:
    workload = Workload(nn.ReLU(), (torch.ones(4),))
    graph = capture(workload)
    backend = fake_backend_cls()
    result = run_energy_pass(graph, workload, backend, PassOptions(trials=2, min_window_s=0.001, idle_s=0.0))
    assert energy_pass.RESTORE_KEY not in {key for key, _ in backend.measured}
    assert result.input_restore_energy_j is None
    assert result.forward_energy_j.median == 1000.0


# --- with the real estimate backend -------------------------------------------------------------------


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + self.lin(y)


def test_signature_dedupe_with_estimate_backend() -> None:
    workload = Workload(Twice().eval(), (torch.randn(8, 16), torch.randn(8, 16)))
    graph = capture(workload)
    assert [node.id for node in graph.nodes] == ["linear", "linear_1", "add"]
    result = run_energy_pass(
        graph, workload, EstimateBackend(watts_per_core=10.0), PassOptions(trials=2, min_window_s=0.002, idle_s=0.01)
    )
    first, second = result.nodes["linear"], result.nodes["linear_1"]
    assert first.measured_as == second.measured_as == "linear"
    assert first.energy_j.median == second.energy_j.median
    assert first.energy_j.samples == second.energy_j.samples
    assert len(first.energy_j.samples) == 2
    assert result.unique_signatures == 2
    assert result.node_sum_j == 2 * first.energy_j.median + result.nodes["add"].energy_j.median


def test_different_strides_or_scalars_are_different_signatures() -> None:
    class Layouts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            a = self.lin(x)
            b = self.lin(w.t())  # same shape as x, transposed strides
            return (a * 2) + (b * 3)

    graph = capture(Workload(Layouts(), (torch.ones(2, 4), torch.ones(4, 2))))
    linears = [node for node in graph.nodes if node.op == "aten.linear.default"]
    assert len(linears) == 2 and linears[0].signature != linears[1].signature
    assert linears[0].inputs[0].shape == linears[1].inputs[0].shape == (2, 4)
    muls = [node for node in graph.nodes if node.op == "aten.mul.Tensor"]
    assert len(muls) == 2 and muls[0].signature != muls[1].signature


# --- stats --------------------------------------------------------------------------------------------


def test_summarize_five_samples() -> None:
    summary = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    # n = 5: no inner order statistic reaches 95%; (min, max) covers 1 - 2/2^5 = 0.9375.
    assert (summary.median, summary.low, summary.high) == (3.0, 1.0, 5.0)
    assert summary.confidence == 0.9375
    assert summary.samples == (5.0, 1.0, 3.0, 2.0, 4.0)  # in trial order


def test_summarize_ten_samples_uses_second_order_statistics() -> None:
    samples = [10.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]
    summary = summarize(samples)
    # P(Binomial(10, 1/2) < 2) = 11/1024 <= 0.025 but P(< 3) = 56/1024 > 0.025: k = 2.
    assert (summary.low, summary.high) == (2.0, 9.0)
    assert summary.median == 5.5
    assert summary.confidence == 1 - 2 * 11 / 1024


def test_summarize_small_and_lower_confidence() -> None:
    one = summarize([2.5])
    assert (one.median, one.low, one.high, one.confidence) == (2.5, 2.5, 2.5, 0.0)
    two = summarize([4.0, 2.0])
    assert (two.median, two.low, two.high, two.confidence) == (3.0, 2.0, 4.0, 0.5)
    # At 80% confidence with n = 10, P(< 3) = 56/1024 <= 0.1 and P(< 4) = 176/1024 > 0.1: k = 3.
    eighty = summarize([float(i) for i in range(1, 11)], confidence=0.8)
    assert (eighty.low, eighty.high) == (3.0, 8.0)
    assert eighty.confidence == 1 - 2 * 56 / 1024


def test_summarize_relative_spread_and_json() -> None:
    summary = summarize([1.0, 2.0, 3.0])
    assert summary.relative_spread == (3.0 - 1.0) / (2 * 2.0)
    assert summarize([0.0, 0.0]).relative_spread == 0.0
    assert summary.to_json() == {"median": 2.0, "low": 1.0, "high": 3.0, "confidence": 0.75, "samples": [1.0, 2.0, 3.0]}


def test_summarize_needs_samples() -> None:
    with pytest.raises(ValueError):
        summarize([])


def test_spearman_known_vectors() -> None:
    assert spearman([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # Monotone but not linear: rank correlation is still exactly 1.
    assert spearman([1, 2, 3, 4], [1, 8, 27, 1000]) == pytest.approx(1.0)
    # Ranks of b: [1, 2, 3.5, 5, 3.5]; cov = 8, var_a = 10, var_b = 9.5.
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    # Ties on both sides: ranks a = [1.5, 1.5, 3, 4], b = [1, 2.5, 2.5, 4]; cov = 3.75, var_a = var_b = 4.5.
    assert spearman([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(3.75 / 4.5)


def test_spearman_degenerate_inputs() -> None:
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        spearman([1], [1])


# --- operand rotation: replays must not run on cache-hot operands -----------------------------------


def test_operand_copies_fill_the_working_set_with_distinct_storage() -> None:
    x = torch.randn(256, 1024)  # 1 MiB of float32
    options = PassOptions(replay_working_set_bytes=8 * 2**20)
    copies = operand_copies((x, 2), {"dim": 1}, options)
    assert len(copies) == 8
    assert copies[0][0][0] is x  # the real operands are one of the copies
    pointers = {args[0].data_ptr() for args, _ in copies}
    assert len(pointers) == 8
    assert all(torch.equal(args[0], x) and args[1] == 2 and kwargs == {"dim": 1} for args, kwargs in copies)
    assert len(operand_copies((x,), {}, PassOptions(replay_working_set_bytes=1024 * 2**20, max_operand_copies=5))) == 5
    assert len(operand_copies((x,), {}, PassOptions(replay_working_set_bytes=0))) == 1
    assert len(operand_copies((3,), {}, options)) == 1  # nothing to copy
    # Default working set on CPU: 32 MiB, so 32 copies of a 1 MiB operand.
    assert len(operand_copies((x,), {}, PassOptions())) == 32


def test_energy_is_per_operator_call_across_copies(monkeypatch, fake_backend_cls) -> None:
    class OneRelu(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x)

    workload = Workload(OneRelu(), (torch.randn(1024),))  # 4 KiB
    graph = capture(workload)
    copies_made = []
    kept_copies = energy_pass.KeptCopies.copies

    def counting_copies(self, *args, **kwargs):
        copies = kept_copies(self, *args, **kwargs)
        copies_made.append(copies)
        return copies

    monkeypatch.setattr(energy_pass.KeptCopies, "copies", counting_copies)
    options = PassOptions(
        trials=1,
        warmup_calls=0,
        min_window_s=0.05,  # planned calls >= 4 copies even when the machine slows the timed warm-up call
        forward_window_s=0.001,
        idle_s=0.0,
        replay_working_set_bytes=16 * 1024,
        remeasure_contended=False,
    )
    backend = fake_backend_cls(energy_per_call=lambda key: 2.0)
    result = run_energy_pass(graph, workload, backend, options)
    (copies,) = copies_made
    assert len(copies) == 4  # 16 KiB working set / 4 KiB operand
    # One operator call per step, rotating through the copies: the backend is told operator calls.
    (relu_calls,) = [calls for key, calls in backend.measured if key == graph.node("relu").signature]
    assert relu_calls == result.nodes["relu"].rounds
    assert result.nodes["relu"].energy_j.median == 2.0


class TwoOps(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x)
        y.add_(1)  # writes into its operand: its replays need fresh clones every trial
        return y


@pytest.mark.parametrize("kept_bytes", [0, 2**20])
def test_operand_clones_are_kept_between_trials_within_the_budget(monkeypatch, fake_backend_cls, kept_bytes) -> None:
    workload = Workload(TwoOps(), (torch.randn(1024),))  # 4 KiB
    graph = capture(workload)
    clones: list[str] = []  # the signature being replayed, once per clone made
    current: list[str] = []
    copies = energy_pass.KeptCopies.copies

    def tracking(self, key, *args, **kwargs):
        current[:] = [key]
        try:
            return copies(self, key, *args, **kwargs)
        finally:
            current[:] = ["(before a replay)"]

    clone = energy_pass._clone_tensors

    def counting_clone(value):
        clones.extend(current or ["(before a replay)"])
        return clone(value)

    monkeypatch.setattr(energy_pass.KeptCopies, "copies", tracking)
    monkeypatch.setattr(energy_pass, "_clone_tensors", counting_clone)
    options = PassOptions(
        trials=3,
        min_trials=3,
        warmup_calls=0,
        min_window_s=0.05,  # planned calls >= 4 even when the machine slows the timed warm-up call
        forward_window_s=0.001,
        idle_s=0.0,
        replay_working_set_bytes=16 * 1024,  # 4 operand sets: the originals and 3 clones
        kept_copies_bytes=kept_bytes,
        remeasure_contended=False,
    )
    backend = fake_backend_cls(energy_per_call=lambda key: 1.0)
    run_energy_pass(graph, workload, backend, options)
    relu = next(n.signature for n in graph.nodes if n.op == "aten.relu.default")
    add_ = next(n.signature for n in graph.nodes if n.mutates)
    assert clones.count(relu) == (3 if kept_bytes else 3 * 3)  # kept: cloned in the first trial only
    assert clones.count(add_) == 3 * 3  # writes into its operands: fresh clones in every trial
    assert clones.count("(before a replay)") == 3  # and the real run's operands are protected from its replay


@pytest.mark.parametrize("kept_bytes", [0, 2**20])
def test_later_trials_replay_kept_operands_without_running_the_program(monkeypatch, kept_bytes) -> None:
    workload = mixed_workload()
    graph = capture(workload)
    runs = []
    run_piece = energy_pass.run_piece

    def counting_run_piece(interpreter, piece):
        runs.append(piece.name)
        return run_piece(interpreter, piece)

    monkeypatch.setattr(energy_pass, "run_piece", counting_run_piece)
    options = PassOptions(
        trials=3,
        min_trials=3,
        warmup_calls=1,
        min_window_s=0.001,
        forward_window_s=0.001,
        idle_s=0.0,
        replay_working_set_bytes=4096,
        kept_copies_bytes=kept_bytes,
        remeasure_contended=False,
    )
    result = run_energy_pass(graph, workload, EstimateBackend(watts_per_core=10.0), options)
    assert len(runs) == (1 if kept_bytes else 3)  # kept: only the first trial runs the program
    for node in graph.nodes:
        measured = result.nodes[node.id]
        assert node.zero_cost or (measured is not None and len(measured.energy_j.samples) == 3)


def test_kept_copies_stay_within_their_budget() -> None:
    x = torch.randn(1024)  # 4 KiB
    options = PassOptions(replay_working_set_bytes=16 * 1024)
    kept = energy_pass.KeptCopies(budget_bytes=4 * 4096)  # one rotation: the operands and 3 clones
    first = kept.copies("a", (x,), {}, options, "cpu", limit=100, keep=True)
    assert len(first) == 4 and first[0][0][0] is x
    again = kept.copies("a", (x,), {}, options, "cpu", limit=100, keep=True)
    assert [c[0][0].data_ptr() for c in again] == [c[0][0].data_ptr() for c in first]
    assert kept.covers({"a"}) and not kept.covers({"a", "b"})
    other = kept.copies("b", (x,), {}, options, "cpu", limit=100, keep=True)  # over the budget: not kept
    assert "b" not in kept.kept and len(other) == 4
    kept.release({"a"})
    assert kept.kept == {} and kept.kept_bytes == {}


def test_copies_are_limited_to_the_calls_a_window_makes() -> None:
    x = torch.randn(256, 1024)  # 1 MiB: 32 copies fill the default working set
    assert len(operand_copies((x,), {}, PassOptions(), limit=5)) == 5
    assert len(operand_copies((x,), {}, PassOptions(), limit=100)) == 32
    assert len(operand_copies((x,), {}, PassOptions(), limit=0)) == 1


# --- CUDA replay path, with torch.cuda mocked (no GPU needed) ---------------------------------------


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda's graph API replaced by recorders; ``events`` lists what ran, in order."""
    import contextlib

    events: list[str] = []

    class FakeStream:
        def wait_stream(self, other) -> None:
            events.append("wait_stream")

    class FakeGraph:
        def replay(self) -> None:
            events.append("replay")

    @contextlib.contextmanager
    def capturing(graph):
        events.append("capture-begin")
        yield
        events.append("capture-end")

    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", capturing)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: events.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "set_stream", lambda stream: events.append("set_stream"))
    return events


def test_cuda_replays_go_through_a_captured_graph(fake_cuda, fake_backend_cls) -> None:
    def op() -> None:
        fake_cuda.append("op")

    options = PassOptions(warmup_calls=0, max_rounds=3, remeasure_contended=False)
    timer = energy_pass._Timer(fake_backend_cls(), options, min_window_s=10.0)
    rounds = timer.measure("key", op, calls_per_run=1, cuda_graph=True).calls
    # Warm-up on a side stream (2 calls), one captured call, then only graph replays.
    capture_end = fake_cuda.index("capture-end")
    assert fake_cuda[: capture_end + 1] == [
        "wait_stream",
        "op",
        "op",
        "wait_stream",
        "capture-begin",
        "op",
        "capture-end",
    ]
    assert rounds == 3
    assert set(fake_cuda[capture_end + 1 :]) == {"replay"}
    assert fake_cuda.count("replay") == rounds  # the window times itself: no separate calibration
