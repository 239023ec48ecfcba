"""The dynamic energy pass: label every operator with joules and seconds.

Sensors cannot read a single kernel (GPU counters update every 10-100 ms), so
each operator is replayed on its own recorded inputs enough rounds to fill the
backend's minimum window. Trials are interleaved: trial t re-runs the whole
program and measures every operator once, so slow drift (thermal, other
processes) spreads over all operators instead of biasing the last ones.
Operators with equal signatures are measured once per trial and shared.

In a real forward pass an operator reads weights and activations that the
operators before it pushed out of the CPU caches; replaying it on the same
operands round after round would keep them cache-hot and under-count its
cost. So replays rotate through copies of the operands, enough copies to
exceed the caches (``replay_working_set_bytes``), and each copy is read once
per round.
Values are freed as soon as the program no longer needs them, so memory stays
near one forward pass, plus the operand clones kept between trials (``kept_copies_bytes``).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from magneton.capture import InputSnapshot, is_profiled, run_piece
from magneton.capture.torch_compat import tree_flatten, tree_map
from magneton.graph import GraphPiece, OpGraph, OpNode
from magneton.measure.allocator import apply_allocator, describe_allocator
from magneton.measure.backends.base import EnergyBackend
from magneton.measure.contention import (
    CONTENDED_RUN_DELAY_S_PER_S,
    CONTENDED_WINDOWS_WARNING_SHARE,
    WindowStats,
    page_fault_cost_s,
    read_counters,
    window_stats,
)
from magneton.measure.cuda_replay import CudaGraphReplays
from magneton.measure.drift import REFERENCE_WINDOW_S, DriftSummary, SyncReference
from magneton.measure.options import PassOptions
from magneton.measure.stats import Summary, summarize
from magneton.progress import ProgressEvent, ProgressObserver
from magneton.workload import Workload

FORWARD_KEY = "__forward__"
# Restoring the inputs of a program that writes into them, measured on its own so it can be taken out of the
# whole pass (a forward window holds many runs, each of which must start from the pristine inputs).
RESTORE_KEY = "__restore_inputs__"


@dataclass(frozen=True)
class Sample:
    """One window's reading, per call, with what happened around it."""

    energy_j: float
    time_s: float
    calls: int  # operator calls in the window
    stats: WindowStats | None  # None for backends that run nothing (replay)


@dataclass(frozen=True)
class NodeEnergy:
    energy_j: Summary  # per call
    time_s: Summary  # per call, wall clock
    rounds: int
    measured_as: str  # the node whose replay carried this measurement (signature dedupe)
    replayed_as: str = "eager"  # "cuda_graph", or "eager" with the reason a graph was not used
    minor_faults_per_call: float = 0.0
    major_faults_per_call: float = 0.0
    fault_time_share: float = 0.0  # estimated share of its time (and energy) spent in page faults
    contended: bool = False  # a window of it waited for a CPU (a re-measured one too): energy may be over-counted
    run_delay_s_per_s: float | None = None  # median CPU wait of its windows, seconds per second


@dataclass(frozen=True)
class ContentionSummary:
    windows: int
    contended_windows: int
    remeasured_windows: int
    run_delay_s_per_s: float | None  # median over windows
    others_busy_cores: float | None  # median over windows
    threshold_s_per_s: float = CONTENDED_RUN_DELAY_S_PER_S

    @property
    def contended_share(self) -> float:
        return self.contended_windows / self.windows if self.windows else 0.0

    @property
    def warning(self) -> str | None:
        if self.contended_share <= CONTENDED_WINDOWS_WARNING_SHARE:
            return None
        return (
            f"busy machine: {self.contended_share:.0%} of measurement windows waited for a CPU "
            f"(> {self.threshold_s_per_s:g} s per s); other processes kept "
            f"{self.others_busy_cores or 0:.1f} cores busy; energies of contended operators are over-counted"
        )


@dataclass
class EnergyPassResult:
    nodes: dict[str, NodeEnergy | None]  # None: zero-cost (view/metadata), not measured
    forward_energy_j: Summary
    forward_time_s: Summary
    idle_power_w: float
    min_window_s: float
    trials: int  # most trials any signature got
    unique_signatures: int
    notes: list[str] = field(default_factory=list)
    allocator: str = ""  # which allocator the program ran under, and what Magneton changed in it
    forward_minor_faults_per_call: float = 0.0
    forward_major_faults_per_call: float = 0.0
    forward_fault_time_share: float = 0.0
    page_fault_cost_s: float = 0.0  # measured first-touch cost of one minor fault
    contention: ContentionSummary | None = None
    wall_s: float = 0.0  # the pass itself
    floor_s: float = 0.0  # idle window + every window at exactly its minimum: the pass cannot be shorter
    min_trials: int = 1
    # Per whole-pass run, already subtracted from forward_energy_j; None when the inputs are not restored.
    input_restore_energy_j: Summary | None = None
    drift: DriftSummary | None = None  # a thread-synchronisation reference timed once per trial (CPU, >1 thread)

    def node_energy_j(self, node_id: str) -> float:
        measured = self.nodes.get(node_id)
        return measured.energy_j.median if measured else 0.0

    @property
    def node_sum_j(self) -> float:
        return sum(self.node_energy_j(node_id) for node_id in self.nodes)

    @property
    def coverage(self) -> float:
        """Sum of per-node energies over the whole forward pass's energy."""
        whole = self.forward_energy_j.median
        return self.node_sum_j / whole if whole > 0 else float("nan")


# A layout-preserving copy may span at most this many times the tensor's elements (a thin slice of a
# huge tensor is copied compactly instead, losing its strides).
_MAX_LAYOUT_SPAN = 16


def clone_preserving_layout(tensor: torch.Tensor) -> torch.Tensor:
    """A copy with the same sizes and strides.

    ``clone()`` keeps the strides of dense tensors (transposes) but makes strided slices and expanded
    (broadcast) views contiguous, so replaying an operator on clones would measure it on better-laid-out
    data than the program gave it, hiding exactly the layout costs Magneton looks for.
    """
    if tensor.layout != torch.strided or tensor.is_contiguous() or tensor.numel() == 0:
        return tensor.clone()
    span = 1 + sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride(), strict=True))
    if span > _MAX_LAYOUT_SPAN * tensor.numel():
        return tensor.clone()
    memory = tensor.as_strided((span,), (1,)).clone()
    return memory.as_strided(tensor.shape, tensor.stride())


def _clone_tensors(value: Any) -> Any:
    return tree_map(lambda v: clone_preserving_layout(v) if isinstance(v, torch.Tensor) else v, value)


def _tensor_bytes(value: Any) -> int:
    leaves, _ = tree_flatten(value)
    return sum(leaf.numel() * leaf.element_size() for leaf in leaves if isinstance(leaf, torch.Tensor))


CPU_REPLAY_WORKING_SET_BYTES = 32 * 2**20


def default_working_set_bytes(device: str) -> int:
    if device.startswith("cuda"):
        l2_bytes = getattr(torch.cuda.get_device_properties(torch.device(device)), "L2_cache_size", 0)
        if l2_bytes:
            return 2 * int(l2_bytes)
        return 4 * CPU_REPLAY_WORKING_SET_BYTES
    return CPU_REPLAY_WORKING_SET_BYTES


def operand_copies(
    args: Any, kwargs: Any, options: PassOptions, device: str = "cpu", limit: int | None = None
) -> list[tuple[Any, Any]]:
    """The operands plus enough clones that rotating through them exceeds the replay working set.

    ``limit``: no more copies than the calls a window will make (each copy is then read once per
    window at most, so more would only cost cloning time).
    """
    count = operand_copy_count(args, kwargs, options, device, limit)
    return [(args, kwargs)] + [_clone_tensors((args, kwargs)) for _ in range(count - 1)]


def operand_copy_count(
    args: Any, kwargs: Any, options: PassOptions, device: str = "cpu", limit: int | None = None
) -> int:
    """How many operand sets (the originals included) a replay rotates through: see ``operand_copies``."""
    working_set = options.replay_working_set_bytes
    if working_set is None:
        working_set = default_working_set_bytes(device)
    size = _tensor_bytes((args, kwargs))
    count = 1
    if size > 0 and working_set > 0:
        count = max(1, min(options.max_operand_copies, math.ceil(working_set / size)))
    if limit is not None:
        count = max(1, min(count, limit))
    return count


class KeptCopies:
    """Operand sets kept from one trial to the next, up to a memory budget.

    Every trial replays each signature on operands that rotate through clones. Cloning them afresh in
    every trial (up to the replay working set, 32 MiB per signature on a CPU) was the largest cost of
    the pass that is not measurement. A trial's operands hold the same values as the last trial's (the
    same program on the same inputs), so the whole rotation is kept, the first trial's real operands
    with their clones; a signature that writes into its operands gets fresh ones every trial. When every
    signature a trial still measures has its rotation kept, that trial replays them without running the
    program again. A signature's operands are dropped once it needs no more trials.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.kept: dict[str, list[tuple[Any, Any]]] = {}
        self.operators: dict[str, Any] = {}
        self.kept_bytes: dict[str, int] = {}

    def copies(
        self,
        key: str,
        args: Any,
        kwargs: Any,
        options: PassOptions,
        device: str,
        limit: int,
        keep: bool,
        operator: Any = None,
    ) -> list[tuple[Any, Any]]:
        """The operand sets to rotate through: kept ones first, then new clones (kept if the budget allows)."""
        count = operand_copy_count(args, kwargs, options, device, limit)
        kept = self.kept.get(key, []) if keep else []
        rotation = kept[:count] or [(args, kwargs)]
        rotation += [_clone_tensors((args, kwargs)) for _ in range(count - len(rotation))]
        if keep and len(rotation) > len(kept):
            size = _tensor_bytes((args, kwargs)) * len(rotation)
            if sum(self.kept_bytes.values()) - self.kept_bytes.get(key, 0) + size <= self.budget_bytes:
                self.kept[key], self.kept_bytes[key], self.operators[key] = rotation, size, operator
        return rotation

    def covers(self, keys: set[str]) -> bool:
        return all(key in self.kept for key in keys)

    def release(self, keys: set[str]) -> None:
        for key in keys:
            self.kept.pop(key, None)
            self.kept_bytes.pop(key, None)
            self.operators.pop(key, None)


def _replay(timer: _Timer, key: str, operator: Any, copies: list[tuple[Any, Any]]) -> Sample:
    """One window of ``operator``: one call per step, each on the next operand set of the rotation."""
    position = itertools.cycle(copies)

    def call_next_copy() -> None:
        copy_args, copy_kwargs = next(position)
        operator(*copy_args, **copy_kwargs)

    return timer.measure(key, call_next_copy)


def _replay_kept(
    timer: _Timer,
    kept: KeptCopies,
    keys: list[str],
    samples: dict[str, list[Sample]],
    options: PassOptions,
    on_measured: Callable[[int], None],
) -> None:
    """A later trial of signatures whose operand sets are all kept: no need to run the program for them.

    ``on_measured`` is told how many of ``keys`` are measured so far, after each one.
    """
    for count, key in enumerate(keys, 1):
        args, kwargs = kept.kept[key][0]
        operator = kept.operators[key]
        copies = kept.copies(key, args, kwargs, options, "cpu", timer.rounds[key], True, operator)
        samples[key].append(_replay(timer, key, operator, copies))
        on_measured(count)


class _Timer:
    """Measures self-timed windows; a key's first window sets the calls planned for its later ones."""

    def __init__(self, backend: EnergyBackend, options: PassOptions, min_window_s: float) -> None:
        self.backend, self.options, self.min_window_s = backend, options, min_window_s
        self.rounds: dict[str, int] = {}
        self.graphs = CudaGraphReplays()
        self.windows = 0
        self.remeasured = 0
        self.floor_s = 0.0
        self.window_stats: list[WindowStats] = []
        self.warmed: set[str] = set()
        # Keys any of whose windows waited for a CPU, a re-measured one included: their readings may be
        # inflated even where the kept window looks quiet (the retry ran on the same busy machine).
        self.contended_keys: set[str] = set()

    def warm_up(self, key: str, call: Callable[[], Any]) -> float:
        """The untimed warm-up calls of ``key``, timed anyway: seconds per call, to size operand copies."""
        calls = max(1, self.options.warmup_calls)
        self.backend.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            call()
        self.backend.synchronize()
        self.warmed.add(key)
        return (time.perf_counter() - start) / calls

    def window_for(self, key: str) -> float:
        return self.min_window_s

    def _window(
        self, key: str, call: Callable[[], Any], planned: int, window_s: float, calls_per_run: int
    ) -> tuple[Sample, int]:
        before = read_counters()
        reading, rounds = self.backend.measure_timed(
            key, call, planned, window_s, self.options.max_rounds, calls_per_run
        )
        stats = window_stats(before, read_counters())
        self.windows += 1
        self.floor_s += window_s
        return Sample(reading.energy_j, reading.time_s, rounds, stats), rounds

    def measure(
        self,
        key: str,
        call: Callable[[], Any],
        calls_per_run: int = 1,
        cuda_graph: bool = False,
        window_s: float | None = None,
        warmup_calls: int | None = None,
        op: Any = None,
    ) -> Sample:
        """Energy (J) and time (s) per operator call; ``call`` performs ``calls_per_run`` of them."""
        if cuda_graph:
            call = self.graphs.wrap(key, call, op)
        window = max(self.min_window_s, window_s or 0.0)
        if key not in self.rounds and key not in self.warmed:
            warmup = self.options.warmup_calls if warmup_calls is None else warmup_calls
            for _ in range(math.ceil(warmup / calls_per_run)):
                call()
            self.backend.synchronize()
        sample, rounds = self._window(key, call, self.rounds.get(key, 1), window, calls_per_run)
        if sample.stats is not None and sample.stats.contended:
            self.contended_keys.add(key)
        if sample.stats is not None and sample.stats.contended and self._may_remeasure():
            self.remeasured += 1
            retry, retry_rounds = self._window(key, call, rounds, window, calls_per_run)
            if retry.stats is not None and (retry.stats.run_delay_s_per_s or 0.0) < (
                sample.stats.run_delay_s_per_s or 0.0
            ):
                sample, rounds = retry, retry_rounds
                self.backend.discard_window(key, 2)
            else:
                self.backend.discard_window(key, 1)
        self.rounds.setdefault(key, rounds)
        if sample.stats is not None:
            self.window_stats.append(sample.stats)
        calls = rounds * calls_per_run
        # The backend is told the number of operator calls, so traces hold per-call values.
        return Sample(sample.energy_j / calls, sample.time_s / calls, calls, sample.stats)

    def _may_remeasure(self) -> bool:
        options = self.options
        if not (options.remeasure_contended and self.backend.contention_sensitive):
            return False
        return self.remeasured < max(4, options.max_remeasure_share * self.windows)


Timer = _Timer  # for other measurements of the same kind (module forwards: magneton.measure.overhead)


class _MeasuringInterpreter(torch.fx.Interpreter):
    """Runs a piece for real and, on the way, replays each signature not yet measured this trial."""

    def __init__(
        self,
        piece: GraphPiece,
        nodes: dict[str, OpNode],
        timer: _Timer,
        device: str,
        measured_this_trial: set[str],
        samples: dict[str, list[Sample]],
        kept_copies: KeptCopies,
        on_measured: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(piece.module)
        self.nodes, self.timer, self.device = nodes, timer, device
        self.measured_this_trial, self.samples = measured_this_trial, samples
        self.kept_copies = kept_copies
        self.on_measured = on_measured

    def run_node(self, fx_node: torch.fx.Node) -> Any:
        op_node = self.nodes.get(fx_node.name) if is_profiled(fx_node) else None
        if op_node is None or op_node.zero_cost or op_node.signature in self.measured_this_trial:
            return super().run_node(fx_node)
        args, kwargs = self.fetch_args_kwargs_from_env(fx_node)
        if op_node.mutates:  # replaying an in-place op must not corrupt the real run's values
            args, kwargs = _clone_tensors((args, kwargs))
        operator: Any = (
            self.module.get_submodule(str(fx_node.target)) if fx_node.op == "call_module" else fx_node.target
        )
        key = op_node.signature
        if self.device.startswith("cuda"):
            # A CUDA graph captures one rotation through every copy: replays skip launch overhead.
            copies = operand_copies(args, kwargs, self.timer.options, self.device)

            def call_each_copy() -> None:
                for copy_args, copy_kwargs in copies:
                    operator(*copy_args, **copy_kwargs)

            sample = self.timer.measure(key, call_each_copy, calls_per_run=len(copies), cuda_graph=True, op=operator)
        else:
            # One operator call per step, on the next copy: a window ends as soon as its minimum has
            # passed (not at the end of a rotation), and it needs no more copies than calls it makes.
            planned = self.timer.rounds.get(key)
            if planned is None:
                per_call_s = self.timer.warm_up(key, lambda: operator(*args, **kwargs))
                planned = math.ceil(self.timer.window_for(key) / max(per_call_s, 1e-9)) + 1
            copies = self.kept_copies.copies(
                key, args, kwargs, self.timer.options, self.device, planned, not op_node.mutates, operator
            )
            sample = _replay(self.timer, key, operator, copies)
        self.samples.setdefault(op_node.signature, []).append(sample)
        self.measured_this_trial.add(op_node.signature)
        if self.on_measured is not None:
            self.on_measured()
        return super().run_node(fx_node)


def _faults_per_call(samples: list[Sample]) -> tuple[float, float]:
    """Median minor and major page faults per call over a key's windows."""
    with_stats = [s for s in samples if s.stats is not None]
    if not with_stats:
        return 0.0, 0.0
    minor = statistics.median(s.stats.minor_faults / s.calls for s in with_stats if s.stats is not None)
    major = statistics.median(s.stats.major_faults / s.calls for s in with_stats if s.stats is not None)
    return minor, major


def _fault_share(faults_per_call: float, time_s: float, fault_cost_s: float) -> float:
    return min(1.0, faults_per_call * fault_cost_s / time_s) if time_s > 0 else 0.0


def _tight(samples: list[Sample], target: float) -> bool:
    return summarize([s.energy_j for s in samples]).relative_spread <= target


def _contention_summary(timer: _Timer) -> ContentionSummary:
    stats = timer.window_stats
    delays = [d for d in (s.run_delay_s_per_s for s in stats) if d is not None]
    others = [s.others_busy_cores for s in stats if s.others_busy_cores is not None]
    return ContentionSummary(
        windows=timer.windows,
        contended_windows=sum(1 for s in stats if s.contended),
        remeasured_windows=timer.remeasured,
        run_delay_s_per_s=statistics.median(delays) if delays else None,
        others_busy_cores=statistics.median(others) if others else None,
    )


def run_energy_pass(
    graph: OpGraph,
    workload: Workload,
    backend: EnergyBackend,
    options: PassOptions | None = None,
    progress: ProgressObserver | None = None,
) -> EnergyPassResult:
    """Measure every operator of ``graph`` and the whole forward pass of ``workload``.

    ``progress``, if given, is told of the idle window and of each operator signature measured in each trial.

    Trials are adaptive: after ``min_trials``, a signature (or the whole pass) whose interval is within
    ``target_relative_spread`` of its median is not measured again; the others go on up to ``trials``.
    """
    options = options or PassOptions()
    if options.trials < 1:
        raise ValueError("trials must be >= 1")
    started = time.perf_counter()
    min_trials = max(1, min(options.min_trials, options.trials))
    min_window_s = options.min_window_s if options.min_window_s is not None else backend.info().min_window_s
    timer = _Timer(backend, options, min_window_s)
    device = graph.device
    by_piece: list[dict[str, OpNode]] = [{} for _ in graph.pieces]
    for node in graph.nodes:
        by_piece[node.piece][node.fx_name] = node
    signatures = {node.signature for node in graph.nodes if not node.zero_cost}
    program_order = list(dict.fromkeys(node.signature for node in graph.nodes if not node.zero_cost))
    samples: dict[str, list[Sample]] = {}
    forward_samples: list[Sample] = []
    restore_samples: list[Sample] = []  # per run, from the same trials as forward_samples
    allocator = describe_allocator()
    allocator_note = apply_allocator(options.allocator)
    kept_copies = KeptCopies(options.kept_copies_bytes if options.trials > 1 else 0)

    # Only a program that writes into its inputs needs them copied and restored before each run.
    inputs = (
        InputSnapshot([workload.args, dict(workload.kwargs)] + [piece.flat_inputs for piece in graph.pieces])
        if graph.mutates_inputs
        else None
    )

    def restore_inputs() -> None:
        if inputs is not None:
            inputs.restore()

    def forward() -> Any:
        restore_inputs()  # each run must see the same inputs; its cost is measured alone and subtracted below
        return workload.fn(*workload.args, **workload.kwargs)

    def tell(trial: int, done: int) -> None:
        if progress is not None:
            progress(ProgressEvent("trial", trial=trial, trials=options.trials, done=done, total=len(signatures)))

    done: set[str] = set()  # keys whose interval is tight enough: no more trials
    trials_run = 0
    # Side streams, graph capture and synchronisation act on the current device: make it the workload's.
    on_device = torch.cuda.device(torch.device(device)) if device.startswith("cuda") else contextlib.nullcontext()
    with on_device, torch.no_grad():
        idle_s = options.idle_s if options.idle_s is not None else max(0.2, min_window_s)
        if progress is not None:
            progress(ProgressEvent("idle"))
        idle = backend.measure_idle(idle_s)
        timer.floor_s += idle_s
        idle_power_w = idle.energy_j / idle.time_s if idle.time_s > 0 else 0.0
        reference = SyncReference.for_device(device) if backend.contention_sensitive else None
        for trial in range(options.trials):
            if trial >= min_trials and FORWARD_KEY in done and signatures <= done:
                break
            trials_run += 1
            if reference is not None:
                reference.read()
                timer.floor_s += REFERENCE_WINDOW_S  # a window at its minimum, like every other
            tell(trial + 1, len(signatures & done))
            if FORWARD_KEY not in done:
                # The whole pass runs eagerly, as the user runs it: no CUDA graph for it.
                whole = timer.measure(
                    FORWARD_KEY, forward, window_s=options.forward_window_s, warmup_calls=options.forward_warmup_calls
                )
                if inputs is not None:
                    restore = timer.measure(
                        RESTORE_KEY,
                        restore_inputs,
                        window_s=options.forward_window_s,
                        warmup_calls=options.forward_warmup_calls,
                    )
                    restore_samples.append(restore)
                    # The user's program does not copy its inputs back before each run: the copy is not its cost.
                    whole = replace(
                        whole,
                        energy_j=max(0.0, whole.energy_j - restore.energy_j),
                        time_s=max(0.0, whole.time_s - restore.time_s),
                    )
                forward_samples.append(whole)
                restore_inputs()
            if trial > 0 and kept_copies.covers(signatures - done):

                def on_kept(count: int, trial: int = trial + 1, already: int = len(signatures & done)) -> None:
                    tell(trial, already + count)

                pending = [key for key in program_order if key not in done]
                _replay_kept(timer, kept_copies, pending, samples, options, on_kept)
            elif not signatures <= done:
                measured_this_trial: set[str] = set(done)

                def on_measured(trial: int = trial + 1, measured: set[str] = measured_this_trial) -> None:
                    tell(trial, len(measured))

                for piece, nodes in zip(graph.pieces, by_piece, strict=True):
                    interpreter = _MeasuringInterpreter(
                        piece,
                        nodes,
                        timer,
                        device,
                        measured_this_trial,
                        samples,
                        kept_copies,
                        on_measured if progress else None,
                    )
                    run_piece(interpreter, piece)
                    del interpreter
            if trial + 1 >= min_trials:
                done.update(
                    key
                    for key, key_samples in [(FORWARD_KEY, forward_samples), *samples.items()]
                    if _tight(key_samples, options.target_relative_spread)
                )
                kept_copies.release(done)
        kept_copies.release(set(kept_copies.kept))
        restore_inputs()

    fault_cost_s = page_fault_cost_s()
    first_with_signature: dict[str, str] = {}
    results: dict[str, NodeEnergy | None] = {}
    for node in graph.nodes:
        if node.zero_cost:
            results[node.id] = None
            continue
        first = first_with_signature.setdefault(node.signature, node.id)
        trial_samples = samples[node.signature]
        time_summary = summarize([s.time_s for s in trial_samples])
        minor, major = _faults_per_call(trial_samples)
        delays = [d for d in (s.stats.run_delay_s_per_s for s in trial_samples if s.stats) if d is not None]
        results[node.id] = NodeEnergy(
            energy_j=summarize([s.energy_j for s in trial_samples]),
            time_s=time_summary,
            rounds=timer.rounds[node.signature],
            measured_as=first,
            replayed_as=timer.graphs.mode(node.signature),
            minor_faults_per_call=minor,
            major_faults_per_call=major,
            fault_time_share=_fault_share(minor + major, time_summary.median, fault_cost_s),
            contended=node.signature in timer.contended_keys,
            run_delay_s_per_s=statistics.median(delays) if delays else None,
        )
    forward_time = summarize([s.time_s for s in forward_samples])
    forward_minor, forward_major = _faults_per_call(forward_samples)
    notes = timer.graphs.notes()  # what was done to the allocator is in ``allocator``, said once
    input_restore_energy_j = summarize([s.energy_j for s in restore_samples]) if restore_samples else None
    if input_restore_energy_j is not None:
        notes.append(
            "the program writes into its own inputs, so each whole-pass run starts by copying them back; that copy "
            f"was measured on its own ({input_restore_energy_j.median:.3g} J per run, median of "
            f"{len(restore_samples)} trials) and subtracted from the whole-pass energy and time"
        )
    return EnergyPassResult(
        nodes=results,
        forward_energy_j=summarize([s.energy_j for s in forward_samples]),
        forward_time_s=forward_time,
        idle_power_w=idle_power_w,
        min_window_s=min_window_s,
        trials=trials_run,
        unique_signatures=len(samples),
        notes=notes,
        allocator=allocator + (f"; {allocator_note}" if allocator_note else ""),
        forward_minor_faults_per_call=forward_minor,
        forward_major_faults_per_call=forward_major,
        forward_fault_time_share=_fault_share(forward_minor + forward_major, forward_time.median, fault_cost_s),
        page_fault_cost_s=fault_cost_s,
        contention=_contention_summary(timer),
        wall_s=time.perf_counter() - started,
        floor_s=timer.floor_s,
        min_trials=min_trials,
        input_restore_energy_j=input_restore_energy_j,
        drift=reference.summary() if reference is not None else None,
    )
