"""Progress of a long analysis, told to an observer; drawing it is the caller's business.

The pipeline and the energy pass call an observer with :class:`ProgressEvent`s and
import nothing to display them; the CLI draws them on stderr with rich.progress
(``magneton.commands.analyze``), a notebook could draw them its own way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Stage = Literal["capture", "idle", "trial"]


@dataclass(frozen=True)
class ProgressEvent:
    stage: Stage  # capture: capturing the graph; idle: the idle-power window; trial: measuring operators
    target: str = ""  # filled in by the pipeline
    trial: int = 0  # 1-based, for ``trial``
    trials: int = 0
    done: int = 0  # operator signatures measured so far in this trial
    total: int = 0  # operator signatures to measure in each trial

    def describe(self) -> str:
        if self.stage == "capture":
            return "capturing the operator graph"
        if self.stage == "idle":
            return "measuring idle power"
        return f"trial {self.trial}/{self.trials}: operator {self.done}/{self.total}"


ProgressObserver = Callable[[ProgressEvent], None]
