"""Energy backends: the one table of them, and the one place that chooses between them.

``BACKENDS`` lists every backend once: its name, how to build it, whether and
when ``auto`` may pick it, and how ``magneton env`` probes it. The CLI's
``--backend`` choices, ``auto``, ``magneton env`` and the report schema's enum
of backend names all come from it. Adding a backend is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from magneton.errors import BackendUnavailable, MagnetonError
from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading

AUTO = "auto"


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


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    detail: str  # reason it is unavailable, or the sensor description
    info: BackendInfo | None = None


AutoRole = Literal["sensor", "fallback", "never"]


@dataclass(frozen=True)
class BackendSpec:
    """One row of the backend table."""

    name: str
    summary: str  # one line for --help and `magneton env`
    build: Callable[[BackendOptions], EnergyBackend]  # raises BackendUnavailable when it cannot work here
    # "sensor": auto tries it, in table order, where ``applies`` holds; "fallback": auto's last resort;
    # "never": only when asked for by name.
    auto: AutoRole
    applies: Callable[[BackendOptions], bool] = lambda options: True
    # Options `magneton env` probes with (e.g. a CUDA device for nvml on a CPU workload);
    # None: not probed, ``summary`` is shown instead.
    probe_options: Callable[[BackendOptions], BackendOptions] | None = lambda options: options


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def cuda_index(device: str) -> int:
    """``cuda:1`` -> 1, ``cuda`` -> 0."""
    _, _, index = device.partition(":")
    return int(index) if index else 0


def _build_nvml(options: BackendOptions) -> EnergyBackend:
    if not _is_cuda(options.device):
        raise BackendUnavailable(
            f"nvml measures NVIDIA GPUs but the workload runs on {options.device!r}; use --device cuda"
        )
    from magneton.measure.backends.nvml import NvmlBackend

    return NvmlBackend(cuda_index(options.device))


def _build_rapl(options: BackendOptions) -> EnergyBackend:
    from magneton.measure.backends.rapl import RaplBackend

    return RaplBackend(options.powercap_root) if options.powercap_root else RaplBackend()


def _build_estimate(options: BackendOptions) -> EnergyBackend:
    from magneton.measure.backends.estimate import EstimateBackend

    return EstimateBackend(options.watts_per_core)


def _build_replay(options: BackendOptions) -> EnergyBackend:
    if options.trace_path is None:
        raise MagnetonError("--backend replay needs --trace FILE (a trace written with --record-trace)")
    from magneton.measure.backends.replay import ReplayBackend

    return ReplayBackend(options.trace_path)


def _probe_nvml_options(options: BackendOptions) -> BackendOptions:
    return options if _is_cuda(options.device) else replace(options, device="cuda:0")


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(
        "nvml",
        "NVIDIA GPU energy counter (or power polling) through NVML",
        _build_nvml,
        auto="sensor",
        applies=lambda options: _is_cuda(options.device),
        probe_options=_probe_nvml_options,
    ),
    BackendSpec("rapl", "CPU package and DRAM energy counters (Linux powercap)", _build_rapl, auto="sensor"),
    BackendSpec(
        "estimate", "process CPU time x watts per core (estimated, never measured)", _build_estimate, "fallback"
    ),
    BackendSpec(
        "replay",
        "plays back a trace recorded with --record-trace (needs --trace)",
        _build_replay,
        auto="never",
        probe_options=None,
    ),
)

BACKEND_NAMES: tuple[str, ...] = tuple(spec.name for spec in BACKENDS)  # what a report's backend.name can be
BACKEND_CHOICES: tuple[str, ...] = (AUTO, *BACKEND_NAMES)  # what --backend accepts

_BY_NAME = {spec.name: spec for spec in BACKENDS}


def backend_spec(name: str) -> BackendSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise MagnetonError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_CHOICES)}") from None


def create_backend(name: str, options: BackendOptions) -> BackendChoice:
    """Build the named backend, or for ``auto`` the best available one, saying why."""
    if name != AUTO:
        return BackendChoice(backend_spec(name).build(options), f"requested with --backend {name}")
    warnings: list[str] = []
    for spec in BACKENDS:
        if spec.auto != "sensor" or not spec.applies(options):
            continue
        try:
            backend = spec.build(options)
        except BackendUnavailable as err:
            warnings.append(f"{spec.name} unavailable: {err}")
            continue
        return BackendChoice(backend, f"auto: {spec.name} is the best readable sensor here", tuple(warnings))
    fallback = next(spec for spec in BACKENDS if spec.auto == "fallback")
    warnings.append(f"no energy sensor readable: falling back to the {fallback.name} backend ({fallback.summary})")
    return BackendChoice(
        fallback.build(options), f"auto: no readable sensor, {fallback.name} is the fallback", tuple(warnings)
    )


def backend_availability(options: BackendOptions) -> list[Availability]:
    """Probe every backend of the table for ``magneton env``."""
    rows = []
    for spec in BACKENDS:
        if spec.probe_options is None:
            rows.append(Availability(spec.name, True, spec.summary))
            continue
        try:
            backend = spec.build(spec.probe_options(options))
        except MagnetonError as err:
            rows.append(Availability(spec.name, False, str(err)))
            continue
        try:
            info = backend.info()
        finally:
            backend.close()
        rows.append(Availability(spec.name, True, info.sensor, info))
    return rows


__all__ = [
    "AUTO",
    "BACKENDS",
    "BACKEND_CHOICES",
    "BACKEND_NAMES",
    "Availability",
    "BackendChoice",
    "BackendInfo",
    "BackendOptions",
    "BackendSpec",
    "EnergyBackend",
    "WindowReading",
    "backend_availability",
    "backend_spec",
    "create_backend",
    "cuda_index",
]
