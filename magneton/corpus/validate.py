"""``magneton corpus validate``: is every case a fair test?

A case is fair when it loads, its two variants compute the same thing (outputs
within 1%), the slow one really costs more on this machine (median energy ratio
over interleaved trials >= 1.1), and its expected lines exist in slow.py and hold
code. A case that cannot run here (no GPU, no ``hf`` extra) is skipped with the
reason; a broken case is reported and the others still run.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from magneton.corpus.case import Case, CaseError, line_holds_code, source_lines
from magneton.corpus.measure import DEFAULT_TRIALS, BuiltVariant, PairEnergy, measure_pair
from magneton.corpus.outputs import DEFAULT_TOLERANCE, compare_outputs
from magneton.errors import MagnetonError
from magneton.measure.options import Allocator

MIN_RATIO = 1.1
EXTRA_MODULES = {"hf": ("transformers", "diffusers")}


@dataclass(frozen=True)
class Check:
    name: str  # loads | lines | outputs | costs-more
    passed: bool
    detail: str


@dataclass(frozen=True)
class CaseValidation:
    case_id: str
    status: str  # ok | failed | skipped | error
    checks: tuple[Check, ...] = ()
    reason: str = ""  # why skipped, or the error
    energy: PairEnergy | None = None
    max_relative_difference: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.energy.ratio.median if self.energy else None

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case_id,
            "status": self.status,
            "reason": self.reason,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
            "max_relative_difference": self.max_relative_difference,
            "energy": self.energy.to_json() if self.energy else None,
        }


@dataclass(frozen=True)
class ValidateOptions:
    backend: str = "auto"
    trials: int = DEFAULT_TRIALS
    min_ratio: float = MIN_RATIO
    tolerance: float = DEFAULT_TOLERANCE
    measure: bool = True  # False: only load and compare outputs (no energy)
    allocator: Allocator = "settled"
    # Measure each case in a fresh process, as its user would run it: in one long process, glibc's allocator
    # state (its mmap threshold, raised by the big blocks earlier cases freed) decides whether a case's
    # temporaries page-fault on every call, and so part of its slow/fast ratio.
    isolate: bool = True


def missing_extras(case: Case) -> list[str]:
    return [
        f"{extra} ({module})"
        for extra in case.device.extras
        for module in EXTRA_MODULES.get(extra, ())
        if importlib.util.find_spec(module) is None
    ]


def skip_reason(case: Case) -> str | None:
    """Why this case cannot run on this machine, or None when it can."""
    missing = missing_extras(case)
    if missing:
        return f"needs the optional dependency {', '.join(missing)}: pip install 'magneton[hf]'"
    if case.device.requires == "cuda":
        import torch

        if not torch.cuda.is_available():
            return f"needs a CUDA GPU: {case.device.reason}"
    return None


def case_device(case: Case) -> str:
    return "cuda" if case.device.requires == "cuda" else "cpu"


def check_lines(case: Case) -> Check:
    """The expected lines exist in slow.py and hold code, not blanks or comments."""
    lines = source_lines(case.slow_path)
    bad = [n for n in case.expected.lines if n > len(lines) or not line_holds_code(lines[n - 1])]
    if bad:
        return Check("lines", False, f"slow.py has {len(lines)} lines; no code on expected line(s) {bad}")
    shown = "; ".join(f"{n}: {lines[n - 1].strip()}" for n in case.expected.lines)
    return Check("lines", True, shown)


def build_variants(case: Case) -> tuple[BuiltVariant, BuiltVariant]:
    """Load both variants, each one's global torch settings recorded and the process' restored."""
    from magneton.diff.settings import apply_settings, record_settings
    from magneton.workload import load_target

    before = record_settings()
    built = []
    try:
        for variant in ("slow", "fast"):
            workload = load_target(case.target(variant))
            built.append(BuiltVariant(variant, workload, record_settings()))
            apply_settings(before)
    finally:
        apply_settings(before)
    return built[0], built[1]


def run_variant(variant: BuiltVariant) -> Any:
    import torch

    from magneton.diff.settings import applied

    with torch.no_grad(), applied(variant.settings):
        return variant.call()


def validate_case(case: Case, options: ValidateOptions | None = None) -> CaseValidation:
    options = options or ValidateOptions()
    checks = [check_lines(case)]
    reason = skip_reason(case)
    if reason is not None:
        return CaseValidation(case.id, "skipped", tuple(checks), reason)
    try:
        slow, fast = build_variants(case)
    except MagnetonError as err:
        checks.append(Check("loads", False, str(err)))
        return CaseValidation(case.id, "failed", tuple(checks), str(err))
    checks.append(Check("loads", True, "slow.py and fast.py load"))
    try:
        comparison = compare_outputs(run_variant(slow), run_variant(fast), options.tolerance)
    except Exception as err:  # a variant that raises is a broken case, not a crash of the batch
        message = f"running a variant raised {type(err).__name__}: {err}"
        checks.append(Check("outputs", False, message))
        return CaseValidation(case.id, "failed", tuple(checks), message)
    detail = comparison.problem or (
        f"max relative difference {comparison.max_relative_difference:.2e} at {comparison.where} "
        f"(tolerance {options.tolerance:g})"
    )
    checks.append(Check("outputs", comparison.equal, detail))
    energy = None
    if options.measure:
        energy = measure_pair(
            slow, fast, options.backend, case_device(case), options.trials, allocator=options.allocator
        )
        ratio = energy.ratio
        checks.append(
            Check(
                "costs-more",
                ratio.median >= options.min_ratio,
                f"slow/fast energy ratio {ratio.median:.3f} (median of {energy.trials} interleaved trials, "
                f"range {ratio.low:.3f}-{ratio.high:.3f}, {energy.provenance} by {energy.backend}); "
                f"needs >= {options.min_ratio:g}",
            )
        )
    status = "ok" if all(c.passed for c in checks) else "failed"
    failed = [c.name for c in checks if not c.passed]
    return CaseValidation(
        case.id,
        status,
        tuple(checks),
        f"failed: {', '.join(failed)}" if failed else "",
        energy,
        comparison.max_relative_difference,
    )


def validate_cases(
    cases: Sequence[Case],
    options: ValidateOptions | None = None,
    on_result: Callable[[CaseValidation], None] | None = None,
) -> list[CaseValidation]:
    """Validate each case; an unexpected failure in one becomes its error result and the batch goes on."""
    results = []
    isolate = options is not None and options.measure and options.isolate
    for case in cases:
        try:
            result = _validate_in_fresh_process(case, options) if isolate else validate_case(case, options)
        except MagnetonError as err:
            result = CaseValidation(case.id, "error", (), str(err))
        except Exception as err:
            result = CaseValidation(case.id, "error", (), f"internal error {type(err).__name__}: {err}")
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _validate_in_fresh_process(case: Case, options: ValidateOptions | None) -> CaseValidation:
    """``validate_case`` in a newly spawned interpreter (spawn: no state inherited, CUDA-safe)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(validate_case, case, options).result()
        except BrokenProcessPool as err:  # the case killed its process (a crash in native code, out of memory)
            raise MagnetonError(f"{case.id}: the process validating it died ({err})") from err


def machine_description() -> str:
    import torch

    from magneton.measure.backends.cpu_power import cpu_model_name

    return f"{cpu_model_name()} ({platform.machine()}), {torch.get_num_threads()} threads, torch {torch.__version__}"


def measured_table(result: CaseValidation, machine: str, note: str = "") -> str:
    """The ``[measured]`` table of case.toml for a validation run that measured energy."""
    energy = result.energy
    if energy is None:
        raise ValueError("no energy was measured")
    lines = [
        "[measured]",
        f"ratio = {energy.ratio.median:.3f}",
        f"slow_energy_j = {energy.slow_energy_j.median:.6g}",
        f"fast_energy_j = {energy.fast_energy_j.median:.6g}",
        f'provenance = "{energy.provenance}"',
        f'backend = "{energy.backend}"',
        f"machine = {json.dumps(machine)}",  # a TOML basic string takes JSON's escapes
        f"trials = {energy.trials}",
        f'allocator = "{energy.allocator}"',
        f'date = "{date.today().isoformat()}"',
    ]
    if note:
        lines.append(f"note = {json.dumps(note)}")
    return "\n".join(lines) + "\n"


def write_measured(path: Path, table: str) -> None:
    """Replace the ``[measured]`` table of a case.toml (it is written by this function, never by hand)."""
    from magneton.atomic import write_text_atomic

    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "[measured]"), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + table
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
        new = "".join(lines[:start]) + table + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    write_text_atomic(path, new)


__all__ = [
    "MIN_RATIO",
    "CaseError",
    "CaseValidation",
    "Check",
    "ValidateOptions",
    "build_variants",
    "check_lines",
    "machine_description",
    "measured_table",
    "skip_reason",
    "validate_case",
    "validate_cases",
    "write_measured",
]
