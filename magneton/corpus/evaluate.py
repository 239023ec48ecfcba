"""``magneton corpus eval``: run every detector on every case and score what they found.

Per case: analyze the slow variant with no peer, diff slow against fast, analyze
the fast variant (false positives), lint the slow variant, and fix --verify it.
A case that cannot run here is skipped with its reason; a detector missing from
this build is recorded as not available; an error in one case or step never
stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from magneton.corpus import detectors
from magneton.corpus.case import Case
from magneton.corpus.detectors import EvalOptions, StepResult
from magneton.corpus.score import CaseRun, CaseScore, Summary, score_case, summarize
from magneton.corpus.validate import skip_reason
from magneton.errors import MagnetonError


@dataclass(frozen=True)
class Evaluation:
    runs: tuple[CaseRun, ...]
    scores: tuple[CaseScore, ...]
    summary: Summary


def _guarded(step: Callable[[], StepResult]) -> StepResult:
    try:
        return step()
    except MagnetonError as err:
        return StepResult("error", str(err))
    except Exception as err:  # one detector failing on one case must not end the evaluation
        return StepResult("error", f"internal error {type(err).__name__}: {err}")


def run_case(
    case: Case,
    options: EvalOptions,
    on_step: Callable[[str], None] | None = None,
    steps_to_run: Sequence[str] = detectors.STEPS,
) -> CaseRun:
    reason = skip_reason(case)
    if reason is not None:
        return CaseRun(case, {}, skipped=reason)
    plan: list[tuple[str, Callable[[], StepResult]]] = [
        ("analyze", lambda: detectors.analyze_slow(case, options)),
        ("diff", lambda: detectors.diff_pair(case, options)),
        ("fast", lambda: detectors.analyze_fast(case, options)),
        ("lint", lambda: detectors.lint_slow(case)),
        ("fix", lambda: detectors.fix_verify(case, options)),
    ]
    steps: dict[str, StepResult] = {}
    for name, step in plan:
        if name not in steps_to_run:
            steps[name] = StepResult("skipped", "not requested (--step)")
            continue
        if on_step is not None:
            on_step(name)
        steps[name] = _guarded(step)
    diff = steps["diff"]
    gap = diff.extras.get("measured_gap_j") if diff.ok else None
    return CaseRun(case, steps, measured_gap_j=gap)


def evaluate(
    cases: Sequence[Case],
    options: EvalOptions | None = None,
    on_case: Callable[[CaseRun, CaseScore], None] | None = None,
    on_step: Callable[[Case, str], None] | None = None,
    steps_to_run: Sequence[str] = detectors.STEPS,
) -> Evaluation:
    options = options or EvalOptions()
    runs, scores = [], []
    for case in cases:
        step_callback: Callable[[str], None] | None = None
        if on_step is not None:
            step_callback = partial(on_step, case)
        run = run_case(case, options, step_callback, steps_to_run)
        score = score_case(run)
        runs.append(run)
        scores.append(score)
        if on_case is not None:
            on_case(run, score)
    return Evaluation(tuple(runs), tuple(scores), summarize(cases, scores))


__all__ = ["Evaluation", "evaluate", "run_case"]
