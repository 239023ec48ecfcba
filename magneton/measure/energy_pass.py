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
near one forward pass.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from magneton.capture import InputSnapshot, is_profiled, run_piece
from magneton.capture.torch_compat import tree_flatten, tree_map
from magneton.graph import GraphPiece, OpGraph, OpNode
from magneton.measure.allocator import steady_allocator
from magneton.measure.backends.base import EnergyBackend
from magneton.measure.cuda_replay import CudaGraphReplays
from magneton.measure.options import PassOptions
from magneton.measure.stats import Summary, summarize
from magneton.progress import ProgressEvent, ProgressObserver
from magneton.workload import Workload

FORWARD_KEY = "__forward__"
# Restoring the inputs of a program that writes into them, measured on its own so it can be taken out of the
# whole pass (a forward window holds many runs, each of which must start from the pristine inputs).
RESTORE_KEY = "__restore_inputs__"
_CALIBRATION_S = 0.002  # long enough to time one call of a microsecond op


@dataclass(frozen=True)
class NodeEnergy:
    energy_j: Summary  # per call
    time_s: Summary  # per call, wall clock
    rounds: int
    measured_as: str  # the node whose replay carried this measurement (signature dedupe)
    replayed_as: str = "eager"  # "cuda_graph", or "eager" with the reason a graph was not used


@dataclass
class EnergyPassResult:
    nodes: dict[str, NodeEnergy | None]  # None: zero-cost (view/metadata), not measured
    forward_energy_j: Summary
    forward_time_s: Summary
    idle_power_w: float
    min_window_s: float
    trials: int
    unique_signatures: int
    notes: list[str] = field(default_factory=list)
    # Per whole-pass run, already subtracted from forward_energy_j; None when the inputs are not restored.
    input_restore_energy_j: Summary | None = None

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


def _clone_tensors(value: Any) -> Any:
    return tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, value)


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


def operand_copies(args: Any, kwargs: Any, options: PassOptions, device: str = "cpu") -> list[tuple[Any, Any]]:
    """The operands plus enough clones that rotating through them exceeds the replay working set."""
    working_set = options.replay_working_set_bytes
    if working_set is None:
        working_set = default_working_set_bytes(device)
    size = _tensor_bytes((args, kwargs))
    count = 1
    if size > 0 and working_set > 0:
        count = max(1, min(options.max_operand_copies, math.ceil(working_set / size)))
    return [(args, kwargs)] + [_clone_tensors((args, kwargs)) for _ in range(count - 1)]


def _repeat(call: Callable[[], Any], rounds: int) -> Callable[[], None]:
    def repeat() -> None:
        for _ in range(rounds):
            call()

    return repeat


class _Timer:
    """Calibrates how many rounds fill a window, once per signature."""

    def __init__(self, backend: EnergyBackend, options: PassOptions, min_window_s: float) -> None:
        self.backend, self.options, self.min_window_s = backend, options, min_window_s
        self.rounds: dict[str, int] = {}
        self.graphs = CudaGraphReplays()

    def rounds_for(self, key: str, call: Callable[[], Any], window_s: float) -> int:
        if key not in self.rounds:
            for _ in range(self.options.warmup_calls):
                call()
            self.backend.synchronize()
            # Doubling batches, one synchronisation each: a sync per call would inflate the per-call
            # time of short GPU kernels and leave the measured window shorter than the minimum.
            calls, batch, start = 0, 1, time.perf_counter()
            while True:
                for _ in range(batch):
                    call()
                self.backend.synchronize()
                calls += batch
                elapsed = time.perf_counter() - start
                if elapsed >= _CALIBRATION_S or calls >= 1000:
                    break
                batch *= 2
            per_call_s = max(elapsed / calls, 1e-9)
            self.rounds[key] = max(1, min(self.options.max_rounds, math.ceil(window_s / per_call_s)))
        return self.rounds[key]

    def measure(
        self,
        key: str,
        call: Callable[[], Any],
        calls_per_run: int = 1,
        cuda_graph: bool = False,
        window_s: float | None = None,
        op: Any = None,
    ) -> tuple[float, float, int]:
        """Energy (J) and time (s) per operator call; ``call`` performs ``calls_per_run`` of them."""
        if cuda_graph:
            call = self.graphs.wrap(key, call, op)
        rounds = self.rounds_for(key, call, max(self.min_window_s, window_s or 0.0))
        calls = rounds * calls_per_run
        # The backend is told the number of operator calls, so traces hold per-call values.
        reading = self.backend.measure(key, _repeat(call, rounds), calls)
        return reading.energy_j / calls, reading.time_s / calls, rounds


class _MeasuringInterpreter(torch.fx.Interpreter):
    """Runs a piece for real and, on the way, replays each not-yet-measured signature."""

    def __init__(
        self,
        piece: GraphPiece,
        nodes: dict[str, OpNode],
        timer: _Timer,
        device: str,
        measured_this_trial: set[str],
        samples: dict[str, list[tuple[float, float]]],
        on_measured: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(piece.module)
        self.nodes, self.timer, self.device = nodes, timer, device
        self.measured_this_trial, self.samples = measured_this_trial, samples
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
        copies = operand_copies(args, kwargs, self.timer.options, self.device)

        def call_each_copy() -> None:
            for copy_args, copy_kwargs in copies:
                operator(*copy_args, **copy_kwargs)

        energy_j, time_s, _ = self.timer.measure(
            op_node.signature,
            call_each_copy,
            calls_per_run=len(copies),
            cuda_graph=self.device.startswith("cuda"),
            op=operator,
        )
        self.samples.setdefault(op_node.signature, []).append((energy_j, time_s))
        self.measured_this_trial.add(op_node.signature)
        if self.on_measured is not None:
            self.on_measured()
        return super().run_node(fx_node)


def run_energy_pass(
    graph: OpGraph,
    workload: Workload,
    backend: EnergyBackend,
    options: PassOptions | None = None,
    progress: ProgressObserver | None = None,
) -> EnergyPassResult:
    """Measure every operator of ``graph`` and the whole forward pass of ``workload``.

    ``progress``, if given, is told of the idle window and of each operator signature measured in each trial.
    """
    options = options or PassOptions()
    if options.trials < 1:
        raise ValueError("trials must be >= 1")
    min_window_s = options.min_window_s if options.min_window_s is not None else backend.info().min_window_s
    timer = _Timer(backend, options, min_window_s)
    device = graph.device
    by_piece: list[dict[str, OpNode]] = [{} for _ in graph.pieces]
    for node in graph.nodes:
        by_piece[node.piece][node.fx_name] = node
    samples: dict[str, list[tuple[float, float]]] = {}
    forward_samples: list[tuple[float, float]] = []
    restore_samples: list[tuple[float, float]] = []  # per run, in the same trials as forward_samples
    allocator_note = steady_allocator() if options.steady_allocator else None

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

    # Side streams, graph capture and synchronisation act on the current device: make it the workload's.
    on_device = torch.cuda.device(torch.device(device)) if device.startswith("cuda") else contextlib.nullcontext()
    with on_device, torch.no_grad():
        if progress is not None:
            progress(ProgressEvent("idle"))
        idle = backend.measure_idle(options.idle_s if options.idle_s is not None else max(0.2, min_window_s))
        idle_power_w = idle.energy_j / idle.time_s if idle.time_s > 0 else 0.0
        to_measure = len({node.signature for node in graph.nodes if not node.zero_cost})

        def tell(trial: int, done: int) -> None:
            if progress is not None:
                progress(ProgressEvent("trial", trial=trial, trials=options.trials, done=done, total=to_measure))

        for trial in range(1, options.trials + 1):
            tell(trial, 0)
            # The whole pass runs eagerly, as the user runs it: no CUDA graph for it.
            energy_j, time_s, _rounds = timer.measure(FORWARD_KEY, forward, window_s=options.forward_window_s)
            if inputs is not None:
                restore_j, restore_s, _rounds = timer.measure(
                    RESTORE_KEY, restore_inputs, window_s=options.forward_window_s
                )
                restore_samples.append((restore_j, restore_s))
                # The user's program does not copy its inputs back before each run: the copy is not its cost.
                energy_j, time_s = max(0.0, energy_j - restore_j), max(0.0, time_s - restore_s)
            forward_samples.append((energy_j, time_s))
            restore_inputs()
            measured_this_trial: set[str] = set()

            def on_measured(trial: int = trial, measured: set[str] = measured_this_trial) -> None:
                tell(trial, len(measured))

            for piece, nodes in zip(graph.pieces, by_piece, strict=True):
                interpreter = _MeasuringInterpreter(
                    piece, nodes, timer, device, measured_this_trial, samples, on_measured if progress else None
                )
                run_piece(interpreter, piece)
                del interpreter
        restore_inputs()

    first_with_signature: dict[str, str] = {}
    results: dict[str, NodeEnergy | None] = {}
    for node in graph.nodes:
        if node.zero_cost:
            results[node.id] = None
            continue
        first = first_with_signature.setdefault(node.signature, node.id)
        trial_samples = samples[node.signature]
        results[node.id] = NodeEnergy(
            energy_j=summarize([e for e, _ in trial_samples]),
            time_s=summarize([t for _, t in trial_samples]),
            rounds=timer.rounds[node.signature],
            measured_as=first,
            replayed_as=timer.graphs.mode(node.signature),
        )
    notes = ([allocator_note] if allocator_note else []) + timer.graphs.notes()
    input_restore_energy_j = summarize([e for e, _ in restore_samples]) if restore_samples else None
    if input_restore_energy_j is not None:
        notes.append(
            "the program writes into its own inputs, so each whole-pass run starts by copying them back; that copy "
            f"was measured on its own ({input_restore_energy_j.median:.3g} J per run, median of "
            f"{len(restore_samples)} trials) and subtracted from the whole-pass energy and time"
        )
    return EnergyPassResult(
        nodes=results,
        forward_energy_j=summarize([e for e, _ in forward_samples]),
        forward_time_s=summarize([t for _, t in forward_samples]),
        idle_power_w=idle_power_w,
        min_window_s=min_window_s,
        trials=options.trials,
        unique_signatures=len(samples),
        notes=notes,
        input_restore_energy_j=input_restore_energy_j,
    )
