"""Measuring a region as a unit, in context.

Per-operator replays do not add up to what a region costs inside its program:
caches, allocation and page faults differ (on ``bias + mm(x, w)`` vs
``addmm(b, x, w)`` the per-operator sums point the wrong way). So a region is
replayed whole: its operators in program order, on the values its entries
held in a real run, enough rounds to fill the backend's window, rotating
through copies of those entry values so that rounds do not run cache-hot.

Both sides run in this one process under the same allocator (the process's own by
default, as ``analyze`` measures; ``--allocator steady`` fixes glibc's thresholds), each under
its own global torch settings, and their measurements are interleaved: trial
t measures every region of A and of B once (alternating which side goes
first), so drift over the run spreads over both. Regions whose operators have
equal signatures are measured once per trial and shared. Each side's whole
forward pass is measured in the same trials, and the region energies of a
side are checked against it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from magneton.diff.flow import Flow
from magneton.diff.settings import Settings, applied
from magneton.graph import OpGraph
from magneton.measure.backends.base import EnergyBackend
from magneton.measure.options import Allocator
from magneton.measure.stats import Summary, summarize
from magneton.workload import Workload

FORWARD = "forward"
_CALIBRATION_S = 0.002


@dataclass
class Side:
    """One program of a diff: its target, workload, graph and the settings its build left."""

    label: str  # "A" or "B"
    target: str
    workload: Workload
    graph: OpGraph
    flow: Flow
    settings: Settings


@dataclass
class RegionProgram:
    """The fx nodes of one side's region and the recorded values of its entries."""

    side: Side
    ops: tuple[int, ...]
    steps: list[tuple[Any, Any]]  # (interpreter, fx node) in program order
    entries: list[tuple[Any, Any]]  # (interpreter, fx node) read by the region, produced outside it
    key: str  # what the backend is told; equal-signature regions share it
    zero_cost: bool
    values: dict[Any, Any] = field(default_factory=dict)  # (interpreter, fx node) -> recorded value

    def run(self, env: dict[Any, Any]) -> None:
        for interpreter, node in self.steps:
            interpreter.env = env
            env[node] = interpreter.run_node(node)


def region_signature(flow: Flow, ops: Sequence[int]) -> str:
    return "|".join(flow.nodes[i].signature for i in ops)


class _Recorder:
    """Interpreters over each piece that keep the values regions read (and nothing else)."""

    def __init__(self, side: Side) -> None:
        import torch

        self.interpreters = [torch.fx.Interpreter(piece.module) for piece in side.graph.pieces]
        self.fx_nodes = [{n.name: n for n in piece.module.graph.nodes} for piece in side.graph.pieces]


def build_programs(side: Side, regions: Sequence[Sequence[int]]) -> list[RegionProgram]:
    """A replayable program per region (by operator indices), with its entries recorded in one real run."""
    import torch

    recorder = _Recorder(side)
    programs = []
    wanted: dict[int, set[str]] = {}
    first_with_signature: dict[str, int] = {}
    for k, ops in enumerate(regions):
        op_set = {(side.flow.nodes[i].piece, side.flow.nodes[i].fx_name) for i in ops}
        steps, entries, seen = [], [], set()
        for i in ops:
            node = side.flow.nodes[i]
            interpreter = recorder.interpreters[node.piece]
            fx_node = recorder.fx_nodes[node.piece][node.fx_name]
            steps.append((interpreter, fx_node))
            for arg in fx_node.all_input_nodes:
                if (node.piece, arg.name) not in op_set and (node.piece, arg.name) not in seen:
                    seen.add((node.piece, arg.name))
                    entries.append((interpreter, arg))
                    wanted.setdefault(node.piece, set()).add(arg.name)
        signature = region_signature(side.flow, ops)
        first = first_with_signature.setdefault(signature, k)
        zero_cost = all(side.flow.nodes[i].zero_cost for i in ops)
        programs.append(RegionProgram(side, tuple(ops), steps, entries, f"diff.{side.label}.r{first}", zero_cost))
    values: dict[tuple[int, str], Any] = {}
    with torch.no_grad(), applied(side.settings):
        for index, piece in enumerate(side.graph.pieces):
            names = wanted.get(index, set())
            interpreter = recorder.interpreters[index]
            original_run_node = interpreter.run_node

            def run_node(node: Any, index: int = index, names: set[str] = names, run: Any = original_run_node) -> Any:
                result = run(node)
                if node.name in names:
                    values[(index, node.name)] = result
                return result

            interpreter.run_node = run_node  # type: ignore[method-assign,assignment]
            try:
                interpreter.run(*piece.flat_inputs, enable_io_processing=False)
            finally:
                interpreter.run_node = original_run_node  # type: ignore[method-assign]
                interpreter.env = {}
    node_piece = {id(interp): i for i, interp in enumerate(recorder.interpreters)}
    for program in programs:
        program.values = {
            node: values[(node_piece[id(interpreter)], node.name)] for interpreter, node in program.entries
        }
    return programs


@dataclass(frozen=True)
class ReplayOptions:
    trials: int = 5
    min_window_s: float | None = None  # default: the backend's
    forward_window_s: float = 0.2
    working_set_bytes: int = 32 * 2**20  # entry copies rotated through, as the energy pass does
    max_copies: int = 16
    allocator: Allocator = "settled"  # as the energy pass: see magneton.measure.options.PassOptions.allocator


@dataclass(frozen=True)
class RegionEnergy:
    energy_j: Summary  # per call of the region
    time_s: Summary
    rounds: int


@dataclass
class ReplayResult:
    regions: dict[tuple[str, int], RegionEnergy | None]  # (side, region index) -> energy; None: zero cost
    forward: dict[str, RegionEnergy]  # side -> whole forward pass
    notes: list[str] = field(default_factory=list)

    def energy_j(self, side: str, index: int) -> float:
        measured = self.regions.get((side, index))
        return measured.energy_j.median if measured else 0.0

    def region_sum_j(self, side: str) -> float:
        return sum(self.energy_j(s, i) for s, i in self.regions if s == side)

    def coverage(self, side: str) -> float:
        whole = self.forward[side].energy_j.median
        return self.region_sum_j(side) / whole if whole > 0 else float("nan")


def _copies(program: RegionProgram, options: ReplayOptions) -> list[dict[Any, Any]]:
    """The recorded entry values plus clones (parameters shared) enough to exceed the caches."""
    import torch

    params = {id(p) for p in _parameters(program.side.workload)}

    def is_activation(value: Any) -> bool:
        return isinstance(value, torch.Tensor) and id(value) not in params

    size = sum(v.numel() * v.element_size() for v in program.values.values() if is_activation(v))
    count = 1 if size == 0 else max(1, min(options.max_copies, math.ceil(options.working_set_bytes / size)))
    copies = [dict(program.values)]
    for _ in range(count - 1):
        # detach: a training graph's values may be views of tensors its optimizer updated in place
        copies.append({k: v.detach().clone() if is_activation(v) else v for k, v in program.values.items()})
    return copies


def _parameters(workload: Workload) -> list[Any]:
    import torch

    fn = workload.fn
    if isinstance(fn, torch.nn.Module):
        return list(fn.parameters()) + list(fn.buffers())
    return []


class Calibrator:
    """Rounds that fill a window, calibrated once per key with a few timed calls."""

    def __init__(self, backend: EnergyBackend, min_window_s: float) -> None:
        self.backend, self.min_window_s = backend, min_window_s
        self.rounds: dict[str, int] = {}

    def measure(self, key: str, call: Callable[[], Any], calls_per_run: int, window_s: float) -> tuple[float, float]:
        window_s = max(window_s, self.min_window_s)
        if key not in self.rounds:
            for _ in range(2):
                call()
            self.backend.synchronize()
            runs, batch, start = 0, 1, time.perf_counter()
            while True:
                for _ in range(batch):
                    call()
                self.backend.synchronize()
                runs += batch
                elapsed = time.perf_counter() - start
                if elapsed >= _CALIBRATION_S or runs >= 1000:
                    break
                batch *= 2
            self.rounds[key] = max(1, min(100_000, math.ceil(window_s / max(elapsed / runs, 1e-9))))
        rounds = self.rounds[key]

        def repeat() -> None:
            for _ in range(rounds):
                call()

        calls = rounds * calls_per_run
        reading = self.backend.measure(key, repeat, calls)
        return reading.energy_j / calls, reading.time_s / calls


def measure_program(
    program: RegionProgram,
    calibrator: Calibrator,
    options: ReplayOptions,
    context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    key_suffix: str = "",
    transform: Callable[[dict[Any, Any]], dict[Any, Any]] | None = None,
) -> tuple[float, float]:
    """One trial: energy (J) and time (s) per call of the region, under its side's settings."""
    import torch

    copies = _copies(program, options)
    if transform is not None:
        copies = [transform(copy) for copy in copies]

    def call() -> None:
        for copy in copies:
            program.run(dict(copy))

    with torch.no_grad(), applied(program.side.settings), context() if context else contextlib.nullcontext():
        return calibrator.measure(program.key + key_suffix, call, len(copies), 0.0)


def _forward(side: Side) -> Callable[[], Any]:
    def call() -> Any:
        return side.workload.fn(*side.workload.args, **side.workload.kwargs)

    return call


def replay_regions(
    sides: tuple[Side, Side],
    programs: dict[str, list[RegionProgram]],
    backend: EnergyBackend,
    options: ReplayOptions,
) -> ReplayResult:
    """Measure every region of both sides and both whole passes, interleaved over ``options.trials``."""
    import torch

    from magneton.measure.allocator import apply_allocator

    if options.trials < 1:
        raise ValueError("trials must be >= 1")
    note = apply_allocator(options.allocator)
    min_window_s = options.min_window_s if options.min_window_s is not None else backend.info().min_window_s
    calibrator = Calibrator(backend, min_window_s)
    samples: dict[str, list[tuple[float, float]]] = {}
    n_regions = len(programs[sides[0].label])
    for trial in range(options.trials):
        order = sides if trial % 2 == 0 else sides[::-1]
        for side in order:
            with torch.no_grad(), applied(side.settings):
                key = f"diff.{side.label}.{FORWARD}"
                samples.setdefault(key, []).append(calibrator.measure(key, _forward(side), 1, options.forward_window_s))
        measured: set[str] = set()
        for k in range(n_regions):
            for side in order:
                program = programs[side.label][k]
                if program.zero_cost or program.key in measured:
                    continue
                measured.add(program.key)
                samples.setdefault(program.key, []).append(measure_program(program, calibrator, options))
    regions: dict[tuple[str, int], RegionEnergy | None] = {}
    for side in sides:
        for k, program in enumerate(programs[side.label]):
            regions[(side.label, k)] = (
                None if program.zero_cost else _summary(samples[program.key], calibrator, program.key)
            )
    forward = {
        side.label: _summary(samples[f"diff.{side.label}.{FORWARD}"], calibrator, f"diff.{side.label}.{FORWARD}")
        for side in sides
    }
    return ReplayResult(regions, forward, [note] if note else [])


def _summary(trials: list[tuple[float, float]], calibrator: Calibrator, key: str) -> RegionEnergy:
    return RegionEnergy(summarize([e for e, _ in trials]), summarize([t for _, t in trials]), calibrator.rounds[key])


__all__ = [
    "Calibrator",
    "RegionEnergy",
    "RegionProgram",
    "ReplayOptions",
    "ReplayResult",
    "Side",
    "build_programs",
    "measure_program",
    "region_signature",
    "replay_regions",
]
