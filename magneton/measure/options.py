"""Options of the energy pass, with their defaults written once.

Kept free of torch so the CLI can show the defaults in ``--help`` without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PassOptions:
    trials: int = 5
    warmup_calls: int = 3
    min_window_s: float | None = None  # default: the backend's own minimum window
    max_rounds: int = 100_000
    # Operand copies rotated through by a replay; 0 replays on the original operands only.
    # None: 32 MiB on CPUs, twice the L2 cache on a CUDA device (50 MB on an H100).
    replay_working_set_bytes: int | None = None
    max_operand_copies: int = 64
    idle_s: float | None = None  # idle-power window; None: max(0.2 s, the backend's minimum window)
    # The whole pass is cheap next to all operators' replays: a longer window averages its jitter.
    forward_window_s: float = 0.2
    steady_allocator: bool = True  # fix glibc malloc's thresholds (see magneton.measure.allocator)
    noisy_relative_spread: float = 0.25  # CI half-width / median above which a node is marked noisy
