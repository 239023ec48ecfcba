"""Every private torch API Magneton relies on, in one place, each with the public API it lacks.

Tested against the oldest torch that pyproject accepts; if one of these changes
upstream, capture degrades (default stack traces) rather than breaking.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


@contextlib.contextmanager
def full_export_stack_traces() -> Iterator[None]:
    """Make torch.export keep every frame below the first ``forward``, as make_fx does.

    By default export keeps only frames *named* ``forward``, so an op in a helper
    method or a plain-function workload would point at the wrong line or none.
    Our wrapper's forward is always the outermost one, so nothing of the user's
    is lost. Private API: if it changes, export's default traces are used.
    """
    tracer_base = getattr(torch.fx.proxy, "TracerBase", None)
    original = getattr(tracer_base, "_filter_traceback_frames", None)
    if tracer_base is None or original is None:
        yield
        return

    def keep_from_first_forward(self: Any, summary: Any) -> Any:
        forward_only = self._record_forward_stack_traces_only
        self._record_forward_stack_traces_only = False
        try:
            return original(self, summary)
        finally:
            self._record_forward_stack_traces_only = forward_only

    tracer_base._filter_traceback_frames = keep_from_first_forward
    try:
        yield
    finally:
        tracer_base._filter_traceback_frames = original


def make_fx_data_dependent_ok() -> dict[str, Any]:
    """make_fx keyword that lets real-tensor tracing run ``.item()``-style data-dependent ops.

    Private: there is no public switch; make_fx's default refuses such ops.
    """
    return {"_error_on_data_dependent_ops": False}
