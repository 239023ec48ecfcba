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
from typing import Any

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


def _run_case_child(case: Case, options: EvalOptions, steps_to_run: Sequence[str], messages: Any) -> None:
    """In the fresh process: run the case, sending each step's name as it starts, then the run."""
    try:
        run = run_case(case, options, lambda step: messages.put(("step", step)), steps_to_run)
    except BaseException as err:  # the parent must hear of it, whatever it was
        messages.put(("error", f"{type(err).__name__}: {err}"))
        return
    messages.put(("done", run))


def run_case_in_fresh_process(
    case: Case,
    options: EvalOptions,
    on_step: Callable[[str], None] | None = None,
    steps_to_run: Sequence[str] = detectors.STEPS,
) -> CaseRun:
    """``run_case`` in a newly spawned interpreter (spawn: nothing inherited, CUDA-safe)."""
    import multiprocessing
    import queue

    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    child = context.Process(target=_run_case_child, args=(case, options, tuple(steps_to_run), messages))
    child.start()
    try:
        while True:
            try:
                kind, payload = messages.get(timeout=1.0)
            except queue.Empty:
                if child.is_alive():
                    continue
                raise MagnetonError(f"{case.id}: the process evaluating it died (exit code {child.exitcode})") from None
            if kind == "step" and on_step is not None:
                on_step(payload)
            elif kind == "error":
                raise MagnetonError(f"{case.id}: internal error in its process: {payload}")
            elif kind == "done":
                return payload
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()


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
        run_one = run_case_in_fresh_process if options.isolate and skip_reason(case) is None else run_case
        try:
            run = run_one(case, options, step_callback, steps_to_run)
        except MagnetonError as err:  # its process died: every step is an error, the others go on
            run = CaseRun(case, {step: StepResult("error", str(err)) for step in detectors.STEPS})
        score = score_case(run)
        runs.append(run)
        scores.append(score)
        if on_case is not None:
            on_case(run, score)
    return Evaluation(tuple(runs), tuple(scores), summarize(cases, scores))


__all__ = ["Evaluation", "evaluate", "run_case", "run_case_in_fresh_process"]
