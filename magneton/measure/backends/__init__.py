"""Energy backends and the one place that chooses between them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from magneton.errors import BackendUnavailable, MagnetonError
from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading

BACKEND_NAMES = ("auto", "estimate", "rapl", "nvml", "replay")


@dataclass(frozen=True)
class BackendOptions:
    device: str = "cpu"  # torch device string of the workload
    watts_per_core: float | None = None  # estimate override
    trace_path: Path | None = None  # replay input
    powercap_root: Path | None = None  # rapl sysfs root (tests use a fake tree)


@dataclass(frozen=True)
class BackendChoice:
    backend: EnergyBackend
    reason: str  # why this backend, shown in every report
    warnings: tuple[str, ...] = ()


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def cuda_index(device: str) -> int:
    """``cuda:1`` -> 1, ``cuda`` -> 0."""
    _, _, index = device.partition(":")
    return int(index) if index else 0


def _build(name: str, options: BackendOptions) -> EnergyBackend:
    if name == "estimate":
        from magneton.measure.backends.estimate import EstimateBackend

        return EstimateBackend(options.watts_per_core)
    if name == "rapl":
        from magneton.measure.backends.rapl import RaplBackend

        return RaplBackend(options.powercap_root) if options.powercap_root else RaplBackend()
    if name == "nvml":
        if not _is_cuda(options.device):
            raise BackendUnavailable(
                f"nvml measures NVIDIA GPUs but the workload runs on {options.device!r}; use --device cuda"
            )
        from magneton.measure.backends.nvml import NvmlBackend

        return NvmlBackend(cuda_index(options.device))
    if name == "replay":
        if options.trace_path is None:
            raise MagnetonError("--backend replay needs --trace FILE (a trace written with --record-trace)")
        from magneton.measure.backends.replay import ReplayBackend

        return ReplayBackend(options.trace_path)
    raise MagnetonError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def create_backend(name: str, options: BackendOptions) -> BackendChoice:
    """Build the named backend, or for ``auto`` the best available one, saying why."""
    if name != "auto":
        return BackendChoice(_build(name, options), f"requested with --backend {name}")
    warnings: list[str] = []
    preferred = ["nvml"] if _is_cuda(options.device) else []
    preferred.append("rapl")
    for candidate in preferred:
        try:
            backend = _build(candidate, options)
        except BackendUnavailable as err:
            warnings.append(f"{candidate} unavailable: {err}")
            continue
        return BackendChoice(backend, f"auto: {candidate} is the best readable sensor here", tuple(warnings))
    warnings.append("no energy sensor readable: falling back to the CPU-time estimate (numbers are estimated)")
    return BackendChoice(
        _build("estimate", options), "auto: no readable sensor, estimate is the fallback", tuple(warnings)
    )


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    detail: str  # reason it is unavailable, or the sensor description
    info: BackendInfo | None = None


def backend_availability(options: BackendOptions) -> list[Availability]:
    """Probe every sensor backend for ``magneton env``."""
    rows = []
    for name in ("nvml", "rapl", "estimate"):
        probe_options = options
        if name == "nvml" and not _is_cuda(options.device):
            probe_options = BackendOptions(device="cuda:0", watts_per_core=options.watts_per_core)
        try:
            backend = _build(name, probe_options)
        except MagnetonError as err:
            rows.append(Availability(name, False, str(err)))
            continue
        try:
            info = backend.info()
        finally:
            backend.close()
        rows.append(Availability(name, True, info.sensor, info))
    rows.append(Availability("replay", True, "plays back a trace recorded with --record-trace (needs --trace)"))
    return rows


__all__ = [
    "BACKEND_NAMES",
    "Availability",
    "BackendChoice",
    "BackendInfo",
    "BackendOptions",
    "EnergyBackend",
    "WindowReading",
    "backend_availability",
    "create_backend",
    "cuda_index",
]
