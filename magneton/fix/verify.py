"""``magneton fix --verify``: measure a fix instead of trusting it.

The workload is loaded twice, from the original file and from the fixed text
(compiled under the original path, so imports and tracebacks behave the same),
and both run on the *same* inputs (the original's); when both are ``nn.Module``s
with the same parameters, the fixed one is given the original's weights so random
initialisation cannot differ. Outputs are compared first: a fix whose outputs
differ by more than 1% (relative to the output's magnitude) is never called
verified. Energy is measured in interleaved trials (A, B, B, A, ...) with the
same backend as ``analyze``, each trial a window of at least the backend's
minimum; the saving is the median of the paired per-trial differences with a
distribution-free confidence interval. "verified" needs matching outputs and an
interval for the saving that lies above zero.

Each window is preceded by untimed calls of the same side. Both sides share one
process and its allocator: without them a window would pay for the heap the *other*
side left behind (the fixed code, measured right after the original, first-touched
the memory the original's larger frees had returned to the OS: one 8 MB output's
page faults in every other trial on pytorch-141210-addmm), a cost neither program
has when run alone. A pair whose windows waited for a CPU (another process held
it: intra-op threads then spin and inflate CPU time) is measured once more, as the
energy pass does (at most a quarter of the trials), and the counts are reported.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magneton.errors import MagnetonError, WorkloadError
from magneton.measure.stats import Summary, summarize
from magneton.workload import Workload, load_target, split_target, validate_workload

OUTPUT_TOLERANCE = 0.01  # largest relative output difference a verified fix may have
# Untimed calls of a side right before each of its windows: the first call after the other side absorbs the
# change of allocator state (page faults of memory the other side's frees gave back); one more to settle.
WARMUP_CALLS_PER_WINDOW = 2


@dataclass(frozen=True)
class Verification:
    target: str
    backend: str
    provenance: str  # measured | estimated: the backend's
    sensor: str
    before_j: Summary  # joules per call, original code
    after_j: Summary  # joules per call, fixed code
    saving_j: Summary  # paired per-trial differences (before - after), joules per call
    max_abs_difference: float
    max_relative_difference: float  # max |a - b| / max |a| over the output tensors
    outputs_match: bool
    contended_trials: int = 0  # kept pairs of windows of which one waited for a CPU (other processes)
    remeasured_trials: int = 0  # pairs measured once more because a window waited for a CPU
    minor_faults_per_call: tuple[float, float] | None = None  # (before, after): median over the kept windows

    @property
    def saving_fraction(self) -> float:
        return self.saving_j.median / self.before_j.median if self.before_j.median > 0 else 0.0

    @property
    def verified(self) -> bool:
        return self.outputs_match and self.saving_j.low > 0

    def verdict(self) -> str:
        if not self.outputs_match:
            return f"NOT verified: outputs differ by {self.max_relative_difference:.2%} (> {OUTPUT_TOLERANCE:.0%})"
        if self.saving_j.low > 0:
            return "verified: outputs match and the saving's interval is above zero"
        return "not verified: outputs match, but the measured saving is not distinguishable from zero"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "backend": {"name": self.backend, "provenance": self.provenance, "sensor": self.sensor},
            "before_energy_j": self.before_j.to_json(),
            "after_energy_j": self.after_j.to_json(),
            "saving_j": self.saving_j.to_json(),
            "saving_fraction": self.saving_fraction,
            "max_abs_difference": self.max_abs_difference,
            "max_relative_difference": self.max_relative_difference,
            "outputs_match": self.outputs_match,
            "contended_trials": self.contended_trials,
            "remeasured_trials": self.remeasured_trials,
            "minor_faults_per_call": list(self.minor_faults_per_call) if self.minor_faults_per_call else None,
            "verified": self.verified,
            "verdict": self.verdict(),
        }


def load_fixed(target: str, path: Path, fixed_text: str) -> Workload:
    """The target's workload with ``path``'s code replaced by ``fixed_text`` (the file on disk is untouched)."""
    where, function = split_target(target)
    name = f"_magneton_fixed_{abs(hash((str(path.resolve()), fixed_text)))}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    if not where.endswith(".py") and "." in where:
        module.__package__ = where.rpartition(".")[0]
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        exec(compile(fixed_text, str(path), "exec"), module.__dict__)  # noqa: S102 - the user's own (fixed) code
        factory = getattr(module, function, None)
        if not callable(factory):
            raise WorkloadError(target, f"the fixed code has no function {function!r}")
        return validate_workload(target, factory())
    except MagnetonError:
        raise
    except (Exception, SystemExit) as err:
        raise WorkloadError(target, f"the fixed code raised {type(err).__name__}: {err}") from err
    finally:
        sys.path.remove(str(path.resolve().parent))
        sys.modules.pop(name, None)


def _leaves(value: Any) -> list[Any]:
    from magneton.capture.torch_compat import tree_flatten

    return tree_flatten(value)[0]


def output_difference(a: Any, b: Any) -> tuple[float, float]:
    """(max absolute, max relative) difference between two outputs; inf when their structure differs."""
    import torch

    left, right = _leaves(a), _leaves(b)
    if len(left) != len(right):
        return math.inf, math.inf
    worst_abs = worst_rel = 0.0
    for x, y in zip(left, right, strict=True):
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape:
                return math.inf, math.inf
            if x.numel() == 0:
                continue
            xf, yf = x.detach().double(), y.detach().double()
            diff = float((xf - yf).abs().max())
            scale = float(xf.abs().max())
        elif isinstance(x, (int, float)) and isinstance(y, (int, float)):
            diff, scale = abs(float(x) - float(y)), abs(float(x))
        else:
            diff, scale = (0.0, 1.0) if x == y else (math.inf, 1.0)
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf))
    return worst_abs, worst_rel


def _share_weights(original: Any, fixed: Any) -> None:
    import torch

    if isinstance(original, torch.nn.Module) and isinstance(fixed, torch.nn.Module):
        state = original.state_dict()
        if set(state) == set(fixed.state_dict()):
            fixed.load_state_dict(state)


def _rounds_for(call: Callable[[], Any], window_s: float) -> int:
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < min(window_s, 0.2) or calls == 0:
        call()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    return max(1, math.ceil(window_s / max(per_call, 1e-9)))


def verify_fix(
    target: str, path: Path, fixed_text: str, backend: str = "auto", trials: int = 7, min_window_s: float | None = None
) -> Verification:
    """Run the original and the fixed workload on the same inputs; compare outputs and measured energy."""
    import torch

    from magneton.capture import workload_device
    from magneton.measure.backends import BackendOptions, create_backend

    original = load_target(target)
    fixed = load_fixed(target, path, fixed_text)
    _share_weights(original.fn, fixed.fn)
    args, kwargs = original.args, dict(original.kwargs)

    def run_a() -> Any:
        return original.fn(*args, **kwargs)

    def run_b() -> Any:
        return fixed.fn(*args, **kwargs)

    with torch.no_grad():
        max_abs, max_rel = output_difference(run_a(), run_b())
        choice = create_backend(backend, BackendOptions(device=workload_device(original)))
        meter = choice.backend
        try:
            info = meter.info()
            window_s = max(min_window_s or info.min_window_s, 0.05)
            runs = {"a": run_a, "b": run_b}
            rounds = {side: _rounds_for(call, window_s) for side, call in runs.items()}
            pairs = _PairedTrials(meter, runs, rounds, max_remeasured=max(2, trials // 4))
            for trial in range(trials):
                pairs.measure(("a", "b") if trial % 2 == 0 else ("b", "a"))  # alternate: drift hits both alike
        finally:
            meter.close()
    saving = [a - b for a, b in zip(pairs.samples["a"], pairs.samples["b"], strict=True)]
    faults = pairs.faults_per_call()
    return Verification(
        target=target,
        backend=info.name,
        provenance=info.provenance,
        sensor=info.sensor,
        before_j=summarize(pairs.samples["a"]),
        after_j=summarize(pairs.samples["b"]),
        saving_j=summarize(saving),
        max_abs_difference=max_abs,
        max_relative_difference=max_rel,
        outputs_match=max_rel <= OUTPUT_TOLERANCE,
        contended_trials=pairs.contended,
        remeasured_trials=pairs.remeasured,
        minor_faults_per_call=faults,
    )


class _PairedTrials:
    """Interleaved windows of the two sides; a pair with a window that waited for a CPU is measured once more."""

    def __init__(
        self, meter: Any, runs: dict[str, Callable[[], Any]], rounds: dict[str, int], max_remeasured: int = 2
    ) -> None:
        self.meter, self.runs, self.rounds = meter, runs, rounds
        self.samples: dict[str, list[float]] = {"a": [], "b": []}
        self.faults: dict[str, list[float]] = {"a": [], "b": []}
        self.contended = 0
        self.remeasured = 0
        self.sensitive = bool(getattr(meter, "contention_sensitive", True))
        # As the energy pass: a bounded number of extra pairs, so a machine busy throughout costs 25% more, not 2x.
        self.max_remeasured = max_remeasured

    def measure(self, order: tuple[str, str]) -> None:
        readings = self._pair(order)
        if self.sensitive and _waited(readings) and self.remeasured < self.max_remeasured:
            retry = self._pair(order)
            self.remeasured += 1
            if _delay(retry) < _delay(readings):
                readings = retry
        if _waited(readings):
            self.contended += 1
        for side, (energy_per_call, stats) in readings.items():
            self.samples[side].append(energy_per_call)
            if stats is not None:
                self.faults[side].append(stats.minor_faults / self.rounds[side])

    def _pair(self, order: tuple[str, str]) -> dict[str, tuple[float, Any]]:
        from magneton.measure.contention import read_counters, window_stats

        readings = {}
        for side in order:
            call, n = self.runs[side], self.rounds[side]
            for _ in range(WARMUP_CALLS_PER_WINDOW):
                call()

            def repeat(call: Callable[[], Any] = call, n: int = n) -> None:
                for _ in range(n):
                    call()

            before = read_counters()
            reading = self.meter.measure(f"verify:{side}", repeat, n)
            readings[side] = (reading.energy_j / n, window_stats(before, read_counters()))
        return readings

    def faults_per_call(self) -> tuple[float, float] | None:
        import statistics

        if not (self.faults["a"] and self.faults["b"]):
            return None
        return statistics.median(self.faults["a"]), statistics.median(self.faults["b"])


def _waited(readings: dict[str, tuple[float, Any]]) -> bool:
    return any(stats is not None and stats.contended for _, stats in readings.values())


def _delay(readings: dict[str, tuple[float, Any]]) -> float:
    return max((stats.run_delay_s_per_s or 0.0) if stats is not None else 0.0 for _, stats in readings.values())


__all__ = ["OUTPUT_TOLERANCE", "Verification", "load_fixed", "output_difference", "verify_fix"]
