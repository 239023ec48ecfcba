"""A Chrome trace-event timeline of one real forward pass (opens in Perfetto and chrome://tracing).

The captured graph runs once more, after the energy pass, through an fx
Interpreter that stamps each operator's start and end: the energy pass's
replays are not in it, so the timeline shows the program as it runs. On CUDA
the interpreter synchronizes after every operator, so slices hold kernel time
(plus one sync each) rather than launch time. Each operator is one complete
(``X``) slice with its name, source line and module in ``args``, nested under
slices for the modules that contain it; its energy per call from the report
(measured or estimated, as the report's backend says) is in the slice's
``args`` and on two counter tracks: energy per operator and cumulative energy.

Format: the JSON Object Format of the Trace Event Format (Google's
"Trace Event Format" document): ``{"traceEvents": [...], "displayTimeUnit":
"ms", "otherData": {...}}``, timestamps in microseconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from magneton.graph import OpGraph

PID = 1
OPERATOR_TID = 1


@dataclass(frozen=True)
class OpTiming:
    """When one operator ran in the timed pass, in nanoseconds from the start of that pass."""

    node_id: str
    start_ns: int
    end_ns: int


def record_timeline(graph: OpGraph) -> list[OpTiming]:
    """Run every piece of ``graph`` once on its recorded inputs, timing each profiled operator."""
    import torch

    from magneton.capture import InputSnapshot, is_profiled, run_piece

    cuda = graph.device.startswith("cuda")
    ids = {(node.piece, node.fx_name): node.id for node in graph.nodes}
    timings: list[OpTiming] = []
    origin = time.perf_counter_ns()

    class TimingInterpreter(torch.fx.Interpreter):
        def __init__(self, module: torch.fx.GraphModule, piece: int) -> None:
            super().__init__(module)
            self.piece = piece

        def run_node(self, fx_node: torch.fx.Node) -> Any:
            node_id = ids.get((self.piece, fx_node.name)) if is_profiled(fx_node) else None
            if node_id is None:
                return super().run_node(fx_node)
            start = time.perf_counter_ns()
            result = super().run_node(fx_node)
            if cuda:
                torch.cuda.synchronize()
            timings.append(OpTiming(node_id, start - origin, time.perf_counter_ns() - origin))
            return result

    # A program that writes into its inputs must leave them as the energy pass left them.
    snapshot = InputSnapshot([piece.flat_inputs for piece in graph.pieces]) if graph.mutates_inputs else None
    try:
        with torch.no_grad():
            if cuda:
                torch.cuda.synchronize()
            origin = time.perf_counter_ns()
            for index, piece in enumerate(graph.pieces):
                run_piece(TimingInterpreter(piece.module, index), piece)
    finally:
        if snapshot is not None:
            snapshot.restore()
    return timings


def _us(ns: int) -> float:
    return ns / 1000.0


def _module_slices(ops: Sequence[tuple[OpTiming, str]]) -> list[dict[str, Any]]:
    """Slices for the module paths around consecutive operators, nested like a call stack."""
    events: list[dict[str, Any]] = []
    stack: list[tuple[str, int, int]] = []  # (module path, start ns, end ns so far)

    def close(depth: int) -> None:
        while len(stack) > depth:
            path, start, end = stack.pop()
            events.append(
                {
                    "name": path.rsplit(".", 1)[-1],
                    "cat": "module",
                    "ph": "X",
                    "ts": _us(start),
                    "dur": _us(end - start),
                    "pid": PID,
                    "tid": OPERATOR_TID,
                    "args": {"module": path},
                }
            )

    for timing, module_path in ops:
        parts = module_path.split(".") if module_path else []
        prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
        common = 0
        while common < min(len(stack), len(prefixes)) and stack[common][0] == prefixes[common]:
            common += 1
        close(common)
        for prefix in prefixes[common:]:
            stack.append((prefix, timing.start_ns, timing.end_ns))
        stack[:] = [(path, start, timing.end_ns) for path, start, _ in stack]
    close(0)
    return events


def build_trace(report: Any, timings: Sequence[OpTiming]) -> dict[str, Any]:
    """The trace-event document: operator slices, module slices, energy counters, metadata.

    ``report`` is the typed Report or its JSON form; only contract fields are read.
    """
    from magneton.report.html import as_mapping

    report = as_mapping(report)
    nodes = {str(node["id"]): node for node in report.get("nodes") or []}
    backend = report.get("backend") or {}
    totals = report.get("energy_provenance")  # typed reports: replayed, estimated, ... of the totals
    provenance = str(totals.get("kind") if isinstance(totals, Mapping) else backend.get("provenance", "unknown"))
    target = " vs ".join(map(str, report["targets"])) if report.get("targets") else str(report.get("target", "?"))
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": PID, "tid": 0, "args": {"name": f"magneton: {target}"}},
        {
            "name": "thread_name",
            "ph": "M",
            "pid": PID,
            "tid": OPERATOR_TID,
            "args": {"name": "operators (one forward pass, fx Interpreter)"},
        },
    ]
    energy_track = f"operator energy per call (mJ, {provenance})"
    cumulative_track = f"cumulative operator energy (mJ, {provenance})"
    cumulative_mj = 0.0
    with_modules: list[tuple[OpTiming, str]] = []
    for timing in timings:
        node = nodes.get(timing.node_id, {})
        source = node.get("source") or None
        energy_j = float(node.get("energy_j", 0.0) or 0.0)
        args: dict[str, Any] = {
            "node": timing.node_id,
            "module": node.get("module_path", ""),
            "module_type": node.get("module_type", ""),
            "source": f"{source['file']}:{source['line']}" if source else None,
            "function": source.get("function") if source else None,
            "code": source.get("code") if source else None,
            "energy_j": energy_j,
            "energy_provenance": provenance,
            "energy_pass_time_s": node.get("time_s"),
            "inputs": [f"{m.get('dtype')}{m.get('shape')}" for m in node.get("inputs", [])],
            "outputs": [f"{m.get('dtype')}{m.get('shape')}" for m in node.get("outputs", [])],
        }
        for key in ("expected_energy_j", "flops", "bytes", "phase", "zero_cost_reason"):
            if node.get(key) is not None:
                args[key] = node[key]
        start_us, end_us = _us(timing.start_ns), _us(timing.end_ns)
        events.append(
            {
                "name": str(node.get("op", timing.node_id)),
                "cat": "operator",
                "ph": "X",
                "ts": start_us,
                "dur": end_us - start_us,
                "pid": PID,
                "tid": OPERATOR_TID,
                "args": args,
            }
        )
        cumulative_mj += energy_j * 1e3
        events.append({"name": energy_track, "ph": "C", "ts": start_us, "pid": PID, "args": {"mJ": energy_j * 1e3}})
        events.append({"name": energy_track, "ph": "C", "ts": end_us, "pid": PID, "args": {"mJ": 0.0}})
        events.append({"name": cumulative_track, "ph": "C", "ts": end_us, "pid": PID, "args": {"mJ": cumulative_mj}})
        with_modules.append((timing, str(node.get("module_path", "") or "")))
    events.extend(_module_slices(with_modules))
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "producer": f"magneton {report.get('magneton_version', '?')}",
            "schema": "magneton.trace-events/1",
            "target": target,
            "device": str(report.get("device", "?")),
            "backend": str(backend.get("name", "?")),
            "energy_provenance": provenance,
            "timeline": "one forward pass through an fx Interpreter after the energy pass; replays left out",
            "energy": "joules per call from the report's energy pass, not from this timed pass",
        },
    }


def write_trace_events(path: Path, graph: OpGraph, report: Any) -> None:
    """Time one forward pass of ``graph`` and write its trace (atomically)."""
    from magneton.atomic import write_text_atomic
    from magneton.errors import MagnetonError

    trace = build_trace(report, record_timeline(graph))
    try:
        write_text_atomic(Path(path), json.dumps(trace, allow_nan=False) + "\n")
    except OSError as err:
        raise MagnetonError(f"cannot write trace events to {path}: {err}") from err


__all__ = ["OpTiming", "build_trace", "record_timeline", "write_trace_events"]
