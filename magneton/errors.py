"""One exception hierarchy: every error a user can see is a MagnetonError."""

from __future__ import annotations


class MagnetonError(Exception):
    """Base of every error Magneton raises on purpose."""


class WorkloadError(MagnetonError):
    """A target could not be loaded or did not return a usable workload."""

    def __init__(self, target: str, problem: str) -> None:
        self.target = target
        self.problem = problem
        self.location: tuple[str, int] | None = None  # the user's file and line that raised, when known
        super().__init__(f"target {target!r}: {problem}")


class InternalError(MagnetonError):
    """A bug in Magneton itself, not in the user's program; the full traceback is kept for --debug."""

    def __init__(self, target: str, err: BaseException, traceback_text: str) -> None:
        self.target = target
        self.traceback_text = traceback_text
        super().__init__(
            f"target {target!r}: internal error in Magneton, not in your program "
            f"({type(err).__name__}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}). "
            "Please report this bug with the command you ran; --debug prints the full traceback."
        )


class CaptureError(MagnetonError):
    """No capture method could produce an operator graph."""


class BackendError(MagnetonError):
    """An energy backend failed while measuring."""


class BackendUnavailable(BackendError):
    """An energy backend cannot be used on this machine; the message says why."""


class SensorPermissionError(BackendUnavailable):
    """The sensor exists but this process may not read it."""


class SensorNotSupported(BackendUnavailable):
    """The sensor cannot measure this device (old GPU without counter, MIG slice, ...)."""


class DeviceLostError(BackendError):
    """The device disappeared or stopped answering during a measurement."""


class TraceError(MagnetonError):
    """A recorded energy trace is missing, malformed or does not match the workload."""


class ReportError(MagnetonError):
    """A report file is missing, corrupt, or not a ``magneton.report/1`` report."""
