"""Where the rest of the energy goes: framework overhead per module.

Operators replayed alone leave out what happens between them: Python in each
``forward``, module dispatch, hooks, argument handling. To attribute it, every
module call of one eager run is recorded (forward hooks), and each module's whole
forward is replayed on its recorded inputs and measured like an operator (same
self-timed windows, signatures measured once and shared). A module's *overhead* is
its whole forward minus its direct child modules' whole forwards minus the
operators that run directly in it. Summed, operators plus overhead explain the root's whole forward.

When the workload *is* the root module, called once, the root's whole forward is the whole pass itself
(the same call on the same inputs: the same ATen operators), already measured by the energy pass in its
long, interleaved windows. It is taken from there, not replayed: a replay measured it again in a few
short windows at another moment of the run, and the two readings of one computation disagreed by
whatever changed in between (on a shared machine, 0.3x to 1.5x for HF GPT-2). Explained coverage is then
exactly 1 and the root's overhead is the remainder: whole pass minus its children minus its operators.
"""

from __future__ import annotations

import inspect
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from magneton.capture.torch_compat import tree_flatten
from magneton.graph import OpGraph, SourceLocation, TensorMeta
from magneton.workload import Workload

if TYPE_CHECKING:
    from magneton.measure.backends.base import EnergyBackend
    from magneton.measure.energy_pass import EnergyPassResult
    from magneton.measure.options import PassOptions

MAX_RECORDED_BYTES = 1 << 30  # module inputs kept for replay; beyond this the attribution is skipped
# Inputs a replay cannot change: a forward given only these runs the same on every replay. Any other object
# (a transformers DynamicCache, a user's state holder) may be mutated by the forward, so each replay would
# measure a different call (a KV cache grows by the sequence on every replay).
_PLAIN_INPUTS = (torch.Tensor, int, float, bool, complex, str, bytes, type(None), torch.dtype, torch.device,
                 torch.memory_format, torch.layout, slice, type(Ellipsis))  # fmt: skip


def stateful_inputs(leaves: list[Any]) -> set[str]:
    """Type names of the flattened inputs that are not tensors or plain values (see ``_PLAIN_INPUTS``): a call
    with any of them is not replayable."""
    return {type(leaf).__name__ for leaf in leaves if not isinstance(leaf, _PLAIN_INPUTS)}


@dataclass(frozen=True)
class RecordedCalls:
    """The replayable module calls of one eager run, and the types of the inputs that made others unreplayable."""

    calls: list[ModuleCall]
    stateful_inputs: tuple[str, ...] = ()  # e.g. ("DynamicCache",)


@dataclass(frozen=True)
class ModuleCall:
    path: str  # "" for the root
    module_type: str
    parent: str | None  # path of the module that called it; None for the root
    signature: str  # type + input metadata + parameter shapes: equal signatures cost the same
    source: SourceLocation | None  # the module class' forward definition
    run: Callable[[], Any]


@dataclass(frozen=True)
class ModuleOverhead:
    path: str
    module_type: str
    calls: int  # calls of this module in one call of the workload
    whole_energy_j: float  # its whole forward, summed over its calls
    children_energy_j: float  # its direct child modules' whole forwards
    operators_energy_j: float  # operators that run directly in it
    overhead_energy_j: float  # whole - children - operators (negative: replays alone cost more than in place)
    source: SourceLocation | None


def _signature(module: torch.nn.Module, args: Any, kwargs: Any) -> str:
    leaves, _ = tree_flatten((args, kwargs))
    inputs = ",".join(TensorMeta.of(t).key() if isinstance(t, torch.Tensor) else repr(t)[:40] for t in leaves)
    params = ",".join(str(tuple(p.shape)) for p in module.parameters(recurse=True))
    return f"module:{type(module).__qualname__}({inputs})[{params}]"


def _forward_source(module: torch.nn.Module) -> SourceLocation | None:
    forward = inspect.unwrap(type(module).forward)  # decorators (deprecation shims) hide the real forward
    try:
        file = inspect.getsourcefile(forward)
        _, line = inspect.getsourcelines(forward)
    except (OSError, TypeError):
        return None
    if file is None:
        return None
    return SourceLocation(file, line, f"{type(module).__name__}.forward", "")


def root_module(fn: Any) -> torch.nn.Module | None:
    if isinstance(fn, torch.nn.Module):
        return fn
    owner = getattr(fn, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def record_module_calls(workload: Workload) -> RecordedCalls | None:
    """Every replayable module call of one eager run, with what it needs to be replayed; None when too large.

    A call whose inputs hold an object its forward may change (see ``stateful_inputs``) is left out: its operators and
    overhead count in the nearest enclosing replayable module, which becomes its children's parent.
    """
    root = root_module(workload.fn)
    if root is None:
        return None
    names = {id(module): name for name, module in root.named_modules()}
    stack: list[tuple[str, bool]] = []  # (path, recorded) of the modules being called
    calls: list[ModuleCall] = []
    stateful: set[str] = set()
    recorded_bytes = [0]

    def pre(module: torch.nn.Module, args: Any, kwargs: Any) -> None:
        path = names.get(id(module), "?")
        leaves, _ = tree_flatten((args, kwargs))
        found = stateful_inputs(leaves)
        if found:
            stateful.update(found)
            stack.append((path, False))
            return
        recorded_bytes[0] += sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))

        def run(module: torch.nn.Module = module, args: Any = args, kwargs: Any = kwargs) -> Any:
            return module(*args, **kwargs)

        calls.append(
            ModuleCall(
                path=path,
                module_type=type(module).__name__,
                parent=next((p for p, recorded in reversed(stack) if recorded), None),
                signature=_signature(module, args, kwargs),
                source=_forward_source(module),
                run=run,
            )
        )
        stack.append((path, True))

    def post(module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if stack:
            stack.pop()

    handles = []
    for module in root.modules():
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad():
            workload.fn(*workload.args, **workload.kwargs)
    finally:
        for handle in handles:
            handle.remove()
    if recorded_bytes[0] > MAX_RECORDED_BYTES:
        return None
    return RecordedCalls(calls, tuple(sorted(stateful)))


def attribute_overhead(
    graph: OpGraph,
    calls: list[ModuleCall],
    measured_j: dict[str, float],
    node_energy_j: Callable[[str], float],
    whole_pass_j: float,
) -> list[ModuleOverhead]:
    """Per module path: whole forward minus children minus direct operators, summed over its calls."""
    whole: dict[str, float] = {}
    children: dict[str, float] = {}
    count: dict[str, int] = {}
    types: dict[str, str] = {}
    sources: dict[str, SourceLocation | None] = {}
    for call in calls:
        energy = measured_j[call.signature]
        whole[call.path] = whole.get(call.path, 0.0) + energy
        count[call.path] = count.get(call.path, 0) + 1
        types[call.path], sources[call.path] = call.module_type, call.source
        if call.parent is not None:
            children[call.parent] = children.get(call.parent, 0.0) + energy
    direct: dict[str, float] = {}
    for node in graph.nodes:
        path = node.module_path if node.module_path in whole else _nearest(node.module_path, whole)
        direct[path] = direct.get(path, 0.0) + node_energy_j(node.id)
    rows = [
        ModuleOverhead(
            path=path,
            module_type=types[path],
            calls=count[path],
            whole_energy_j=whole[path],
            children_energy_j=children.get(path, 0.0),
            operators_energy_j=direct.get(path, 0.0),
            overhead_energy_j=whole[path] - children.get(path, 0.0) - direct.get(path, 0.0),
            source=sources[path],
        )
        for path in whole
    ]
    root_j = whole.get("", 0.0)
    if whole_pass_j > 0 and count.get("", 0) != 1:  # generate and other callables: glue around the model
        rows.append(
            ModuleOverhead(
                path="(outside the model)",
                module_type="",
                calls=1,
                whole_energy_j=whole_pass_j,
                children_energy_j=root_j,
                operators_energy_j=direct.get("(outside the model)", 0.0),
                overhead_energy_j=whole_pass_j - root_j,
                source=None,
            )
        )
    return sorted(rows, key=lambda row: -row.overhead_energy_j)


def measure_module_calls(
    calls: list[ModuleCall], timer: Any, trials: int, known_j: dict[str, float] | None = None
) -> dict[str, float]:
    """Median energy per call of each distinct module signature, over interleaved trials.

    ``known_j``: signatures whose energy per call is already measured (the root's, when it is the whole pass):
    taken as they are, not replayed.
    """
    known_j = known_j or {}
    unique: dict[str, ModuleCall] = {}
    for call in calls:
        if call.signature not in known_j:
            unique.setdefault(call.signature, call)
    samples: dict[str, list[float]] = {signature: [] for signature in unique}
    with torch.no_grad():
        for _ in range(trials):
            for signature, call in unique.items():
                samples[signature].append(timer.measure(signature, call.run).energy_j)
    return {**known_j, **{signature: statistics.median(values) for signature, values in samples.items()}}


def whole_pass_root(workload: Workload, calls: list[ModuleCall]) -> ModuleCall | None:
    """The root module's call when it is the whole pass: the workload is the module itself, called once.

    ``model.generate`` and other callables call the root several times (or not at all) with glue around it:
    their root calls are replayed and the glue is the "(outside the model)" row.
    """
    if not isinstance(workload.fn, torch.nn.Module):
        return None
    roots = [call for call in calls if call.path == ""]
    if len(roots) != 1:
        return None
    if sum(1 for call in calls if call.signature == roots[0].signature) != 1:
        return None  # a child with the root's signature would share its (whole-pass) energy
    return roots[0]


def measure_overhead(
    graph: OpGraph, workload: Workload, backend: EnergyBackend, pass_options: PassOptions, result: EnergyPassResult
) -> tuple[list[ModuleOverhead] | None, str | None]:
    """Per-module overhead rows of one analysis, or None and a note saying why they were not attributed.

    Module forwards are measured like the energy pass' operators: same backend, same self-timed windows.
    """
    from magneton.measure.energy_pass import Timer

    if backend.name == "replay":
        return None, "overhead per module not attributed: a replayed trace holds operator windows only"
    if graph.mutates_inputs:
        return None, "overhead per module not attributed: the program writes into its inputs"
    recorded = record_module_calls(workload)
    if recorded is None:
        return None, "overhead per module not attributed: the workload is not an nn.Module (or its method)"
    calls = recorded.calls
    if not calls:
        return None, (
            "overhead per module not attributed: every module call takes an object its forward may change "
            f"({', '.join(recorded.stateful_inputs)})"
        )
    stateful_note = (
        f"modules called with an object their forward may change ({', '.join(recorded.stateful_inputs)}, e.g. a KV "
        "cache) were not replayed: their overhead counts in the nearest enclosing module"
        if recorded.stateful_inputs
        else None
    )
    timer = Timer(backend, pass_options, result.min_window_s)
    root = whole_pass_root(workload, calls)
    known_j = {root.signature: result.forward_energy_j.median} if root is not None else {}
    try:
        with torch.no_grad():
            measured = measure_module_calls(calls, timer, max(1, result.min_trials), known_j)
    except Exception as err:  # noqa: BLE001 - the user's forward, replayed out of its program: any error
        # A forward whose inputs hold state it changes (generate's KV cache) cannot be replayed on its
        # recorded inputs: each replay grows the state. The run itself was measured; only this part is lost.
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        return None, (
            f"overhead per module not attributed: replaying a module's forward on its recorded inputs raised "
            f"{type(err).__name__}: {first} (inputs holding state that forward changes, such as a KV cache, "
            "cannot be replayed)"
        )
    rows = attribute_overhead(graph, calls, measured, result.node_energy_j, result.forward_energy_j.median)
    return rows, stateful_note


def _nearest(path: str, known: dict[str, float]) -> str:
    """The closest enclosing module that was recorded (functional code inside a module keeps its path)."""
    parts = path.split(".")
    while parts:
        parts.pop()
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
    return ""
