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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

from magneton.capture import InputSnapshot, is_profiled, run_piece
from magneton.graph import GraphPiece, OpGraph, OpNode
from magneton.measure.allocator import steady_allocator
from magneton.measure.backends.base import EnergyBackend
from magneton.measure.options import PassOptions
from magneton.measure.stats import Summary, summarize
from magneton.workload import Workload

FORWARD_KEY = "__forward__"
_CALIBRATION_S = 0.002  # long enough to time one call of a microsecond op


@dataclass(frozen=True)
class NodeEnergy:
    energy_j: Summary  # per call
    time_s: Summary  # per call, wall clock
    rounds: int
    measured_as: str  # the node whose replay carried this measurement (signature dedupe)


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


def _cuda_graph(call: Callable[[], Any]) -> Callable[[], Any] | None:
    """Capture one call as a CUDA graph so replays skip Python and launch overhead."""
    try:
        # Warm up on a side stream first, as CUDA graph capture requires (lazy cuBLAS workspaces etc.).
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                call()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            call()
        return graph.replay
    except Exception:  # ops that sync or allocate on the host cannot be captured: plain replay
        torch.cuda.synchronize()
        return None


class _Timer:
    """Calibrates how many rounds fill a window, once per signature."""

    def __init__(self, backend: EnergyBackend, options: PassOptions, min_window_s: float) -> None:
        self.backend, self.options, self.min_window_s = backend, options, min_window_s
        self.rounds: dict[str, int] = {}

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
    ) -> tuple[float, float, int]:
        """Energy (J) and time (s) per operator call; ``call`` performs ``calls_per_run`` of them."""
        if cuda_graph:
            call = _cuda_graph(call) or call
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
    ) -> None:
        super().__init__(piece.module)
        self.nodes, self.timer, self.device = nodes, timer, device
        self.measured_this_trial, self.samples = measured_this_trial, samples

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
            op_node.signature, call_each_copy, calls_per_run=len(copies), cuda_graph=self.device.startswith("cuda")
        )
        self.samples.setdefault(op_node.signature, []).append((energy_j, time_s))
        self.measured_this_trial.add(op_node.signature)
        return super().run_node(fx_node)


def run_energy_pass(
    graph: OpGraph, workload: Workload, backend: EnergyBackend, options: PassOptions | None = None
) -> EnergyPassResult:
    """Measure every operator of ``graph`` and the whole forward pass of ``workload``."""
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
        restore_inputs()  # each replay must see the same inputs; costs one copy of them when restoring
        return workload.fn(*workload.args, **workload.kwargs)

    with torch.no_grad():
        idle = backend.measure_idle(options.idle_s if options.idle_s is not None else max(0.2, min_window_s))
        idle_power_w = idle.energy_j / idle.time_s if idle.time_s > 0 else 0.0
        for _ in range(options.trials):
            # The whole pass runs eagerly, as the user runs it: no CUDA graph for it.
            energy_j, time_s, _rounds = timer.measure(FORWARD_KEY, forward, window_s=options.forward_window_s)
            forward_samples.append((energy_j, time_s))
            restore_inputs()
            measured_this_trial: set[str] = set()
            for piece, nodes in zip(graph.pieces, by_piece, strict=True):
                interpreter = _MeasuringInterpreter(piece, nodes, timer, device, measured_this_trial, samples)
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
        )
    return EnergyPassResult(
        nodes=results,
        forward_energy_j=summarize([e for e, _ in forward_samples]),
        forward_time_s=summarize([t for _, t in forward_samples]),
        idle_power_w=idle_power_w,
        min_window_s=min_window_s,
        trials=options.trials,
        unique_signatures=len(samples),
        notes=[allocator_note] if allocator_note else [],
    )
