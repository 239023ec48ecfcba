"""Options of the energy pass, with their defaults written once.

Kept free of torch so the CLI can show the defaults in ``--help`` without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from magneton.measure.backends.base import EnergyBackend

Allocator = Literal["settled", "process", "steady"]


@dataclass(frozen=True)
class PassOptions:
    trials: int = 7  # most trials per signature; adaptive: fewer where the interval is already tight
    min_trials: int = 3  # with 2 trials the median is just a mean; fewer only when trials says so
    target_relative_spread: float = 0.05  # a signature stops once its interval is within +-5% of the median
    warmup_calls: int = 3  # operator calls before a signature's first window (a rotation counts as its copies)
    forward_warmup_calls: int = 3  # whole-pass calls before its first window: the allocator settles
    min_window_s: float | None = None  # default: the backend's own minimum window
    max_rounds: int = 100_000  # most calls between two synchronisations of a window (never ends it early)
    # Operand copies rotated through by a replay; 0 replays on the original operands only.
    # None: 32 MiB on CPUs, twice the L2 cache on a CUDA device (100 MiB on an H100).
    replay_working_set_bytes: int | None = None
    max_operand_copies: int = 64
    # Operand clones kept from one trial to the next instead of cloned again (0: clone in every trial).
    kept_copies_bytes: int = 512 * 2**20
    idle_s: float | None = None  # idle-power window; None: max(0.2 s, the backend's minimum window)
    # The whole pass is cheap next to all operators' replays: a longer window averages its jitter.
    forward_window_s: float = 0.2
    # The allocator state measured in (magneton.measure.allocator): "settled", glibc's defaults where a
    # long-running process ends up; "process", as found; "steady", glibc's thresholds fixed.
    allocator: Allocator = "settled"
    noisy_relative_spread: float = 0.25  # CI half-width / median above which a node is marked noisy
    remeasure_contended: bool = True  # a window whose threads waited for a CPU is measured once more
    max_remeasure_share: float = 0.25  # at most this share of extra windows for contention


def replay_pass_options(backend: EnergyBackend, options: PassOptions) -> tuple[PassOptions, list[str]]:
    """Energy-pass options a replay can honestly run with: every trace sample used at most once.

    Cycling a 3-trial trace through 7 trials would report 7 trials and a confidence interval
    built from copies of the same 3 samples. Nothing runs inside a replayed window, so a
    "contended" one is not measured again either: that would only draw the next sample.
    """
    from magneton.measure.backends.replay import ReplayBackend  # lazily: this module stays free of torch

    if not isinstance(backend, ReplayBackend):
        return options, []
    available = backend.trials_available
    notes = []
    if options.trials > available:
        notes.append(
            f"--trials {options.trials} lowered to {available}: trace {backend.path.name} holds {available} "
            "trial(s) per measurement, and replaying a sample twice would fake a tighter interval"
        )
    trials = min(options.trials, available)
    return replace(options, trials=trials, min_trials=min(options.min_trials, trials), remeasure_contended=False), notes
