"""The ``nvml`` backend: NVIDIA GPU energy through NVML (package nvidia-ml-py).

Two modes, chosen per GPU at start-up:

* **energy counter** (Volta and newer): ``nvmlDeviceGetTotalEnergyConsumption``
  returns millijoules since the driver loaded; a window is the difference of
  two readings.
* **power polling** (older GPUs, where the counter call raises NotSupported):
  a thread reads ``nvmlDeviceGetPowerUsage`` (milliwatts) every few
  milliseconds and a window integrates those samples with the trapezoid rule.

Both count the whole GPU board, including other processes' work on it. NVML
cannot attribute energy to a MIG slice, so MIG is refused rather than
reported wrongly.

The counter does not change every time it is read: the driver refreshes it
every few to ~100 ms depending on the GPU. The backend measures that refresh
period at start-up and asks for windows at least ten periods long, so the
quantisation at the two ends of a window is at most a tenth of it.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from magneton.errors import (
    BackendError,
    BackendUnavailable,
    DeviceLostError,
    MagnetonError,
    SensorNotSupported,
    SensorPermissionError,
)
from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading

try:
    import pynvml
except ImportError:  # pragma: no cover - nvidia-ml-py is a declared dependency
    pynvml = None


class _NoNvmlError(Exception):
    """Stand-in exception type when pynvml is missing; never raised."""


# Bound at import so tests that replace the ``pynvml`` module with a mock still
# catch the real exception type their mocks raise.
_NVMLError: type[Exception] = pynvml.NVMLError if pynvml is not None else _NoNvmlError

# NVML return codes (nvml.h); plain ints so a mocked module does not hide them.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_DEVICE_MIG_ENABLE = 1

# NVML reports the counter in millijoules.
COUNTER_RESOLUTION_J = 1e-3

# Ten counter periods per window bound the end-point quantisation to 1/10 of
# the window; 50 ms is a floor because a window also pays launch/sync jitter.
MIN_WINDOW_FLOOR_S = 0.05
WINDOW_PERIODS = 10

# When the refresh period cannot be observed (an idle GPU whose counter did not
# move), assume the slow end of what NVIDIA GPUs do.
FALLBACK_UPDATE_PERIOD_S = 0.1

DEFAULT_POLL_INTERVAL_S = 0.005
DEFAULT_PROBE_DURATION_S = 0.5


# --------------------------------------------------------------------------- errors


def translate_nvml_error(err: BaseException, action: str, *, setting_up: bool = False) -> MagnetonError:
    """Map an NVML exception to Magneton's typed errors, naming what was being done."""
    code = getattr(err, "value", None)
    if code == NVML_ERROR_LIBRARY_NOT_FOUND:
        return BackendUnavailable("NVML library (libnvidia-ml.so) not found: no NVIDIA driver on this machine")
    if code == NVML_ERROR_DRIVER_NOT_LOADED:
        return BackendUnavailable(
            "NVIDIA driver is installed but not loaded (nvidia-smi fails too): load the kernel module or reboot"
        )
    if code == NVML_ERROR_NO_PERMISSION:
        return SensorPermissionError(
            f"NVML denied permission to {action}: run as a user that may access /dev/nvidia* "
            "(e.g. in the video group) or as root; in a container pass the GPU with --gpus"
        )
    if code == NVML_ERROR_GPU_IS_LOST:
        return DeviceLostError(f"GPU is lost while trying to {action}: it fell off the bus or stopped answering")
    if code == NVML_ERROR_NOT_SUPPORTED:
        return SensorNotSupported(f"this GPU does not support: {action}")
    if setting_up:
        return BackendUnavailable(f"NVML failed to {action}: {err}")
    return BackendError(f"NVML failed to {action}: {err}")


def _text(value: str | bytes) -> str:
    # Older pynvml releases return bytes, newer ones str.
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------- device mapping


def _normalise_uuid(uuid: str) -> str:
    uuid = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if uuid.startswith(prefix):
            return uuid[len(prefix) :]
    return uuid


def _parse_pci_bus_id(bus_id: str) -> tuple[int, int, int] | None:
    """``"00000000:3B:00.0"`` or ``"0000:3b:00.0"`` -> (domain, bus, device)."""
    try:
        domain, bus, rest = bus_id.strip().split(":")
        device = rest.split(".")[0]
        return int(domain, 16), int(bus, 16), int(device, 16)
    except (ValueError, AttributeError):
        return None


def parse_cuda_visible_devices(value: str | None) -> list[str] | None:
    """The entries CUDA will honour, or None when the variable is unset (all devices).

    CUDA stops at the first entry that is not a device id (``"0,1,-1,2"`` shows
    two devices), so the list is cut there the same way.
    """
    if value is None:
        return None
    entries: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            break
        if entry.startswith(("GPU-", "MIG-")) or (entry.isdigit()):
            entries.append(entry)
        else:
            break
    return entries


def refuse_mig_selection(torch_index: int, cuda_visible_devices: str | None, torch_uuid: str | None) -> None:
    """Raise SensorNotSupported when torch's device is a MIG slice (by CUDA_VISIBLE_DEVICES or UUID)."""
    visible = parse_cuda_visible_devices(cuda_visible_devices)
    entry = visible[torch_index] if visible is not None and torch_index < len(visible) else None
    if (entry is not None and entry.startswith("MIG-")) or (torch_uuid or "").strip().upper().startswith("MIG-"):
        raise SensorNotSupported(
            f"NVML cannot measure energy of a MIG slice (cuda:{torch_index} is {entry or torch_uuid}): "
            "energy counters exist only for the whole GPU; profile on a GPU without MIG"
        )


@dataclass(frozen=True)
class DeviceMatch:
    nvml_index: int
    matched_by: str  # "uuid", "pci_bus_id", "CUDA_VISIBLE_DEVICES", "ordinal"


def match_nvml_device(
    torch_index: int,
    cuda_visible_devices: str | None,
    nvml_uuids: Sequence[str],
    torch_uuid: str | None,
    nvml_pci_bus_ids: Sequence[str] | None = None,
    torch_pci_bus_id: str | None = None,
) -> DeviceMatch:
    """Find the NVML device behind torch's ``cuda:<torch_index>``, saying how it was matched.

    UUIDs are exact; PCI bus ids are exact too; the CUDA_VISIBLE_DEVICES
    ordinal is a last resort because CUDA's default order (fastest first) can
    differ from NVML's (PCI bus order).
    """
    refuse_mig_selection(torch_index, cuda_visible_devices, torch_uuid)
    visible = parse_cuda_visible_devices(cuda_visible_devices)
    entry = visible[torch_index] if visible is not None and torch_index < len(visible) else None
    if visible is not None and torch_index >= len(visible):
        raise BackendUnavailable(
            f"cuda:{torch_index} is not visible with CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} "
            f"({len(visible)} device(s) usable)"
        )
    normalised = [_normalise_uuid(u) for u in nvml_uuids]
    if torch_uuid:
        wanted = _normalise_uuid(torch_uuid)
        if wanted in normalised:
            return DeviceMatch(normalised.index(wanted), "uuid")
    if torch_pci_bus_id and nvml_pci_bus_ids:
        wanted_pci = _parse_pci_bus_id(torch_pci_bus_id)
        parsed = [_parse_pci_bus_id(b) for b in nvml_pci_bus_ids]
        if wanted_pci is not None and wanted_pci in parsed:
            return DeviceMatch(parsed.index(wanted_pci), "pci_bus_id")
    if entry is not None:
        if entry.isdigit():
            index = int(entry)
            if index >= len(nvml_uuids):
                raise BackendUnavailable(
                    f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} names GPU {index} "
                    f"but NVML sees {len(nvml_uuids)} GPU(s)"
                )
            return DeviceMatch(index, "CUDA_VISIBLE_DEVICES")
        # CUDA accepts any unique prefix of a GPU UUID.
        prefix = _normalise_uuid(entry)
        hits = [i for i, u in enumerate(normalised) if u.startswith(prefix)]
        if len(hits) == 1:
            return DeviceMatch(hits[0], "CUDA_VISIBLE_DEVICES")
        raise BackendUnavailable(
            f"CUDA_VISIBLE_DEVICES entry {entry!r} matches {len(hits)} of NVML's GPUs ({', '.join(nvml_uuids)})"
        )
    if torch_index >= len(nvml_uuids):
        raise BackendUnavailable(f"cuda:{torch_index} does not exist: NVML sees {len(nvml_uuids)} GPU(s)")
    return DeviceMatch(torch_index, "ordinal")


def resolve_nvml_index(
    torch_index: int,
    cuda_visible_devices: str | None,
    nvml_uuids: Sequence[str],
    torch_uuid: str | None,
    nvml_pci_bus_ids: Sequence[str] | None = None,
    torch_pci_bus_id: str | None = None,
) -> int:
    """NVML index of torch's ``cuda:<torch_index>``; see :func:`match_nvml_device`."""
    return match_nvml_device(
        torch_index, cuda_visible_devices, nvml_uuids, torch_uuid, nvml_pci_bus_ids, torch_pci_bus_id
    ).nvml_index


# ------------------------------------------------------------ pure measurement math


def integrate_power_trapezoid(samples: Sequence[tuple[float, float]], start_s: float, end_s: float) -> float:
    """Joules in [start_s, end_s] from (time_s, power_w) samples, piecewise linear between samples.

    Power at the window edges is interpolated between the neighbouring samples;
    beyond the first or last sample it is held constant.
    """
    if end_s < start_s:
        raise ValueError(f"window ends ({end_s}) before it starts ({start_s})")
    if not samples:
        raise ValueError("no power samples to integrate")
    points = sorted(samples)
    times = [t for t, _ in points]

    def power_at(t: float) -> float:
        i = bisect.bisect_right(times, t)
        if i == 0:
            return points[0][1]
        if i == len(points):
            return points[-1][1]
        (t0, p0), (t1, p1) = points[i - 1], points[i]
        return p0 if t1 == t0 else p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    knots = [(start_s, power_at(start_s))]
    knots.extend((t, p) for t, p in points if start_s < t < end_s)
    knots.append((end_s, power_at(end_s)))
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(knots))


def infer_update_period_s(samples: Sequence[tuple[float, float]]) -> float | None:
    """Median time between changes of a polled value; None with fewer than two full periods."""
    change_times = [t for (_, v0), (t, v1) in pairwise(samples) if v1 != v0]
    intervals = [b - a for a, b in pairwise(change_times)]
    if len(intervals) < 2:
        return None
    return statistics.median(intervals)


def sample_changes(
    read: Callable[[], float],
    max_duration_s: float,
    enough_changes: int = 12,
    clock: Callable[[], float] = time.perf_counter,
) -> list[tuple[float, float]]:
    """Read ``read()`` in a tight loop until it changed ``enough_changes`` times or time ran out."""
    start = clock()
    samples = [(start, read())]
    changes = 0
    while changes < enough_changes:
        now = clock()
        if now - start > max_duration_s:
            break
        value = read()
        if value != samples[-1][1]:
            changes += 1
        samples.append((now, value))
    return samples


def min_window_for_period_s(update_period_s: float) -> float:
    return max(MIN_WINDOW_FLOOR_S, WINDOW_PERIODS * update_period_s)


# ------------------------------------------------------------------- power polling


class _PowerPoller:
    """Background thread sampling board power; keeps only samples open windows need."""

    def __init__(self, read_power_w: Callable[[], float], interval_s: float) -> None:
        self._read_power_w = read_power_w
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._samples: list[tuple[float, float]] = []
        self._open_starts: list[float] = []
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._sample()  # a first sample before any window opens
        self._thread = threading.Thread(target=self._loop, name="magneton-nvml-power", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        before = time.perf_counter()
        power_w = self._read_power_w()
        now = (before + time.perf_counter()) / 2  # the reading belongs to the middle of the call
        with self._lock:
            self._samples.append((now, power_w))
            self._prune()

    def _prune(self) -> None:
        # Keep the last sample at or before the oldest open window's start: it
        # is needed to interpolate power at that start.
        keep_from = min(self._open_starts) if self._open_starts else self._samples[-1][0]
        times = [t for t, _ in self._samples]
        cut = max(bisect.bisect_right(times, keep_from) - 1, 0)
        if cut:
            del self._samples[:cut]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._sample()
            except Exception as err:  # surfaced by the next close_window
                self._error = err
                return

    def open(self) -> float:
        start_s = time.perf_counter()
        with self._lock:
            self._open_starts.append(start_s)
        return start_s

    def close(self, start_s: float) -> tuple[float, float]:
        """Return (energy_j, time_s) for the window opened at ``start_s``."""
        end_s = time.perf_counter()
        # Wait for one sample past the end so the end power is interpolated, not held.
        deadline = end_s + 20 * self.interval_s + 0.1
        while True:
            self._raise_if_failed(start_s)
            with self._lock:
                if self._samples and self._samples[-1][0] >= end_s:
                    break
            if time.perf_counter() > deadline:
                self._forget(start_s)
                raise BackendError(f"NVML power polling stalled: no sample for {deadline - end_s:.2f} s")
            time.sleep(self.interval_s / 4)
        with self._lock:
            samples = list(self._samples)
        self._forget(start_s)
        return integrate_power_trapezoid(samples, start_s, end_s), end_s - start_s

    def _forget(self, start_s: float) -> None:
        with self._lock:
            self._open_starts.remove(start_s)

    def _raise_if_failed(self, start_s: float) -> None:
        if self._error is not None:
            self._forget(start_s)
            if isinstance(self._error, MagnetonError):
                raise self._error  # already typed (DeviceLostError, ...) by the read function
            raise BackendError(f"NVML power polling thread failed: {self._error!r}") from self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


# -------------------------------------------------------------------------- backend


@dataclass(frozen=True)
class _TorchIdentity:
    uuid: str | None
    pci_bus_id: str | None


def _torch_identity(torch_index: int) -> _TorchIdentity:
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(
            f"torch cannot use CUDA (torch {torch.__version__}, built for CUDA {torch.version.cuda}), "
            f"so cuda:{torch_index} cannot be matched to an NVML GPU"
        )
    count = torch.cuda.device_count()
    if torch_index >= count:
        raise BackendUnavailable(f"cuda:{torch_index} does not exist: torch sees {count} CUDA device(s)")
    props = torch.cuda.get_device_properties(torch_index)
    uuid = getattr(props, "uuid", None)
    # Older torch builds lack the PCI fields; the UUID usually suffices.
    pci_parts = [getattr(props, a, None) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")]
    pci: str | None = None
    if all(isinstance(p, int) for p in pci_parts):
        domain, bus, device = pci_parts
        pci = f"{domain:08x}:{bus:02x}:{device:02x}.0"
    return _TorchIdentity(str(uuid) if uuid is not None else None, pci)


class NvmlBackend(EnergyBackend):
    """Whole-GPU energy of torch's ``cuda:<torch_device_index>`` from NVML."""

    name = "nvml"

    def __init__(
        self,
        torch_device_index: int,
        *,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        probe_duration_s: float = DEFAULT_PROBE_DURATION_S,
        update_period_s: float | None = None,
    ) -> None:
        """``update_period_s`` skips the start-up probe of the counter's refresh period."""
        if pynvml is None:
            raise BackendUnavailable(
                "python package nvidia-ml-py (module pynvml) is not installed: pip install nvidia-ml-py"
            )
        self.torch_index = torch_device_index
        self._poller: _PowerPoller | None = None
        self._closed = False
        self._call(pynvml.nvmlInit, "initialise NVML", setting_up=True)
        try:
            self._setup(poll_interval_s, probe_duration_s, update_period_s)
        except BaseException:
            self.close()
            raise

    def _call(self, fn: Callable[..., Any], action: str, *args: Any, setting_up: bool = False) -> Any:
        try:
            return fn(*args)
        except _NVMLError as err:
            raise translate_nvml_error(err, action, setting_up=setting_up) from err

    def _setup(self, poll_interval_s: float, probe_duration_s: float, update_period_s: float | None) -> None:
        count = self._call(pynvml.nvmlDeviceGetCount, "count GPUs", setting_up=True)
        handles = [
            self._call(pynvml.nvmlDeviceGetHandleByIndex, f"open GPU {i}", i, setting_up=True) for i in range(count)
        ]
        uuids = [_text(self._call(pynvml.nvmlDeviceGetUUID, "read GPU UUID", h, setting_up=True)) for h in handles]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        # Refuse a MIG slice before asking torch about it.
        refuse_mig_selection(self.torch_index, visible, None)
        identity = _torch_identity(self.torch_index)
        pci_ids: list[str] | None = None
        if identity.uuid is None or _normalise_uuid(identity.uuid) not in {_normalise_uuid(u) for u in uuids}:
            pci_ids = [
                _text(self._call(pynvml.nvmlDeviceGetPciInfo, "read PCI bus id", h, setting_up=True).busId)
                for h in handles
            ]
        match = match_nvml_device(self.torch_index, visible, uuids, identity.uuid, pci_ids, identity.pci_bus_id)
        self.nvml_index = match.nvml_index
        self.matched_by = match.matched_by
        self.uuid = uuids[match.nvml_index]
        self._handle = handles[match.nvml_index]
        self.gpu_name = _text(self._call(pynvml.nvmlDeviceGetName, "read GPU name", self._handle, setting_up=True))
        self._refuse_mig()

        self.mode = "energy counter"
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except _NVMLError as err:
            translated = translate_nvml_error(err, "read the GPU energy counter", setting_up=True)
            if not isinstance(translated, SensorNotSupported):
                raise translated from err
            self.mode = "power polling"

        read: Callable[[], float]
        if self.mode == "energy counter":
            read = self._read_counter_mj
        else:
            try:
                self._read_power_w()
            except SensorNotSupported as err:
                raise SensorNotSupported(
                    f"{self.gpu_name} (NVML {self.nvml_index}) reports neither an energy counter nor power draw"
                ) from err
            read = self._read_power_w

        self.update_period_origin = "given by the caller"
        if update_period_s is None:
            update_period_s = infer_update_period_s(sample_changes(read, probe_duration_s))
            self.update_period_origin = "measured at start-up"
        if self.mode == "energy counter":
            if update_period_s is None:
                update_period_s = FALLBACK_UPDATE_PERIOD_S
                self.update_period_origin = "assumed: the counter barely changed during the start-up probe"
            self.update_period_s = update_period_s
        else:
            # A window cannot resolve faster than we sample, however fast the sensor refreshes.
            if update_period_s is None or update_period_s < poll_interval_s:
                update_period_s = poll_interval_s
                self.update_period_origin = "the polling interval"
            self.update_period_s = update_period_s
            self._poller = _PowerPoller(self._read_power_w, poll_interval_s)
        self.poll_interval_s = poll_interval_s
        self.min_window_s = min_window_for_period_s(self.update_period_s)

    def _refuse_mig(self) -> None:
        try:
            current, _pending = pynvml.nvmlDeviceGetMigMode(self._handle)
        except _NVMLError as err:
            if getattr(err, "value", None) == NVML_ERROR_NOT_SUPPORTED:
                return  # pre-Ampere GPUs have no MIG at all
            raise translate_nvml_error(err, "read MIG mode", setting_up=True) from err
        if current == NVML_DEVICE_MIG_ENABLE:
            raise SensorNotSupported(
                f"NVML cannot measure energy of a MIG slice: {self.gpu_name} (NVML {self.nvml_index}) has MIG "
                "enabled and its energy counter covers every slice; disable MIG (nvidia-smi -mig 0) to profile"
            )

    def _read_counter_mj(self) -> float:
        return float(
            self._call(pynvml.nvmlDeviceGetTotalEnergyConsumption, "read the GPU energy counter", self._handle)
        )

    def _read_power_w(self) -> float:
        return self._call(pynvml.nvmlDeviceGetPowerUsage, "read GPU power", self._handle) / 1000.0

    def info(self) -> BackendInfo:
        counter = self.mode == "energy counter"
        if counter:
            sensor_call = "nvmlDeviceGetTotalEnergyConsumption"
        else:
            sensor_call = f"nvmlDeviceGetPowerUsage every {self.poll_interval_s * 1e3:g} ms"
        period_note = f"update period {self.update_period_s * 1e3:.1f} ms, {self.update_period_origin}"
        return BackendInfo(
            name=self.name,
            provenance="measured",
            sensor=f"NVML {sensor_call} on {self.gpu_name} (NVML index {self.nvml_index}, {self.mode})",
            min_window_s=self.min_window_s,
            resolution_j=COUNTER_RESOLUTION_J if counter else None,
            update_period_s=self.update_period_s,
            formula=None if counter else "energy_j = trapezoid integral of power_w over the window",
            constants={
                "mode": self.mode,
                "gpu_name": self.gpu_name,
                "gpu_uuid": self.uuid,
                "nvml_index": self.nvml_index,
                "torch_index": self.torch_index,
                "matched_by": self.matched_by,
                "poll_interval_s": None if counter else self.poll_interval_s,
            },
            notes=(
                "NVML counts the whole GPU board, including other processes' work on it",
                period_note,
                f"min window = max({MIN_WINDOW_FLOOR_S} s, {WINDOW_PERIODS} x update period) "
                "so end-point quantisation stays under a tenth of a window",
            ),
        )

    def open_window(self) -> Any:
        if self._poller is not None:
            return self._poller.open()
        counter_mj = self._read_counter_mj()
        return counter_mj, time.perf_counter()

    def close_window(self, window: Any) -> WindowReading:
        if self._poller is not None:
            energy_j, time_s = self._poller.close(window)
            return WindowReading(energy_j=energy_j, time_s=time_s)
        start_mj, start_s = window
        end_s = time.perf_counter()
        end_mj = self._read_counter_mj()
        if end_mj < start_mj:
            raise DeviceLostError(
                f"NVML energy counter of {self.gpu_name} went backwards ({start_mj} -> {end_mj} mJ): "
                "the driver was reloaded or the GPU reset during the window"
            )
        return WindowReading(energy_j=(end_mj - start_mj) * COUNTER_RESOLUTION_J, time_s=end_s - start_s)

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self.torch_index)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        if pynvml is not None:
            # Already shut down or the driver went away: nothing is left to release.
            with contextlib.suppress(_NVMLError):
                pynvml.nvmlShutdown()
