"""Telling the user's errors from Magneton's own: where an exception was raised, and by whom.

An exception raised while Magneton runs the user's program is a *workload error*:
it names the target and the innermost frame of the user's code (outside torch,
Magneton and the standard library), with a one-line hint where one is known.
Anything else is a Magneton bug: an ``InternalError`` that asks to be reported
and keeps the full traceback for ``--debug``.
"""

from __future__ import annotations

import traceback
from types import TracebackType

from magneton.errors import InternalError, MagnetonError, WorkloadError

_CUDA_MISSING = ("Torch not compiled with CUDA", "Found no NVIDIA driver", "no CUDA GPUs are available")
_META = ("meta tensor", "device='meta'", "on the meta device", "FakeTensor", "fake tensor", "Cannot copy out of meta")


def user_frame(tb: TracebackType | None) -> traceback.FrameSummary | None:
    """The innermost frame of ``tb`` in the user's code or a third-party library, if any."""
    from magneton.capture.source import is_user_file

    innermost = None
    for frame in traceback.extract_tb(tb):
        if frame.filename and is_user_file(frame.filename):
            innermost = frame
    return innermost


def hint_for(err: BaseException) -> str | None:
    """A one-line hint for exceptions whose cause is known."""
    text = f"{type(err).__name__}: {err}"
    if any(marker in text for marker in _CUDA_MISSING):
        return "CUDA was requested but this torch build or machine has no CUDA; run on the CPU (--device cpu)"
    if any(marker in text for marker in _META):
        return "inputs and parameters must be real tensors (not meta or fake tensors): load real weights"
    return None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else "")[:500]


def classify(target: str, err: BaseException, doing: str) -> MagnetonError:
    """Turn an unexpected exception raised while ``doing`` something for ``target`` into the error to show.

    A MagnetonError that does not name its target yet gets the target's name in front, so every
    error of a batch can be told apart.
    """
    if isinstance(err, WorkloadError):
        return err
    if isinstance(err, MagnetonError):
        labelled = type(err).__new__(type(err))
        labelled.args = (f"target {target!r}: {err}",)
        labelled.__dict__.update(err.__dict__)
        return labelled
    frame = user_frame(err.__traceback__)
    if frame is None:
        hint = hint_for(err)
        if hint is not None:  # torch raised it on the user's behalf (e.g. --device cuda without CUDA)
            return WorkloadError(target, f"{doing} raised {type(err).__name__}: {_first_line(err)}\n  hint: {hint}")
        return InternalError(target, err, "".join(traceback.format_exception(type(err), err, err.__traceback__)))
    where = f"{frame.filename}:{frame.lineno} in {frame.name}"
    code = f"\n    {frame.line.strip()}" if frame.line else ""
    hint = hint_for(err)
    message = f"{doing} raised {type(err).__name__} at {where}:{code}\n  {type(err).__name__}: {_first_line(err)}"
    if hint:
        message += f"\n  hint: {hint}"
    workload_error = WorkloadError(target, message)
    workload_error.location = (frame.filename, frame.lineno or 0)
    return workload_error


__all__ = ["classify", "hint_for", "user_frame"]
