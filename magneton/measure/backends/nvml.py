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

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from magneton.errors import BackendUnavailable, DeviceLostError, SensorNotSupported
from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading
from magneton.measure.backends.power_sampling import (
    PowerPoller,
    counter_power_w,
    infer_update_period_s,
    sample_changes,
)
from magneton.measure.devices.cuda_nvml import (
    TorchIdentity,
    match_nvml_device,
    normalise_uuid,
    refuse_mig_selection,
    torch_identity,
)
from magneton.measure.devices.nvml_errors import (
    NVML_DEVICE_MIG_ENABLE,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVMLError,
    nvml_text,
    translate_nvml_error,
)

try:
    import pynvml  # the backend's only NVML handle: tests mock it here
except ImportError:  # pragma: no cover - nvidia-ml-py is a declared dependency
    pynvml = None

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
# A burst of matmuls before the idle window: a GPU fresh from its low-power state idles lower than after work.
WARM_UP_S = 0.3
# Long enough to see a dozen refreshes of a 100 ms counter; the probe stops early once it has.
DEFAULT_PROBE_DURATION_S = 1.5
# Ampere and newer (but GA100) report a 1 s average from nvmlDeviceGetPowerUsage; this field is instantaneous.
NVML_FI_DEV_POWER_INSTANT = 186


def min_window_for_period_s(update_period_s: float) -> float:
    return max(MIN_WINDOW_FLOOR_S, WINDOW_PERIODS * update_period_s)


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
        align_edges: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``update_period_s`` skips the start-up probe of the counter's refresh period."""
        if pynvml is None:
            raise BackendUnavailable(
                "python package nvidia-ml-py (module pynvml) is not installed: pip install nvidia-ml-py"
            )
        self.torch_index = torch_device_index
        self._poller: PowerPoller | None = None
        self._closed = False
        self._instant_power = True
        self.align_edges = align_edges
        self._clock = clock
        self._idle_power_w: float | None = None
        self._call(pynvml.nvmlInit, "initialise NVML", setting_up=True)
        try:
            self._setup(poll_interval_s, probe_duration_s, update_period_s)
        except BaseException:
            self.close()
            raise

    def _call(self, fn: Callable[..., Any], action: str, *args: Any, setting_up: bool = False) -> Any:
        try:
            return fn(*args)
        except NVMLError as err:
            raise translate_nvml_error(err, action, setting_up=setting_up) from err

    def _setup(self, poll_interval_s: float, probe_duration_s: float, update_period_s: float | None) -> None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        # Refuse a MIG slice before asking torch about it.
        refuse_mig_selection(self.torch_index, visible, None)
        identity = torch_identity(self.torch_index)
        self.skipped_gpus: list[str] = []
        self._handle, self.nvml_index, self.matched_by = self._find_device(identity, visible)
        self.uuid = nvml_text(self._call(pynvml.nvmlDeviceGetUUID, "read GPU UUID", self._handle, setting_up=True))
        self.gpu_name = nvml_text(self._call(pynvml.nvmlDeviceGetName, "read GPU name", self._handle, setting_up=True))
        self._refuse_mig()

        self.mode = "energy counter"
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except NVMLError as err:
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
        self.probe_power_w: float | None = None
        if update_period_s is None:
            samples = sample_changes(read, probe_duration_s)
            update_period_s = infer_update_period_s(samples)
            self.update_period_origin = "measured at start-up"
            if self.mode == "energy counter":
                self.probe_power_w = counter_power_w(samples)
        if self.mode == "energy counter":
            if update_period_s is None:
                # Fewer than three refreshes seen: the period may be as long as half the probe.
                update_period_s = max(FALLBACK_UPDATE_PERIOD_S, probe_duration_s / 2)
                self.update_period_origin = "assumed: the counter barely changed during the start-up probe"
            self.update_period_s = update_period_s
        else:
            # A window cannot resolve faster than we sample, however fast the sensor refreshes.
            if update_period_s is None or update_period_s < poll_interval_s:
                update_period_s = poll_interval_s
                self.update_period_origin = "the polling interval"
            self.update_period_s = update_period_s
            self._poller = PowerPoller(self._read_power_w, poll_interval_s)
        self.poll_interval_s = poll_interval_s
        self.min_window_s = min_window_for_period_s(self.update_period_s)

    def _find_device(self, identity: TorchIdentity, visible: str | None) -> tuple[Any, int, str]:
        """NVML handle of torch's device: looked up directly, enumerating only as a last resort.

        On shared nodes (cgroups, SLURM) NVML lists every GPU of the host but
        refuses handles to the ones this job may not use; a direct lookup by UUID
        or PCI bus id never touches them.
        """
        if identity.uuid:
            wanted = normalise_uuid(identity.uuid)
            # torch's uuid carries no prefix: a MIG slice is recognised only by NVML accepting it as MIG-.
            if self._lookup(pynvml.nvmlDeviceGetHandleByUUID, f"MIG-{wanted}") is not None:
                raise SensorNotSupported(
                    f"NVML cannot measure energy of a MIG slice (cuda:{self.torch_index} is MIG-{wanted}): "
                    "energy counters exist only for the whole GPU; profile on a GPU without MIG"
                )
            handle = self._lookup(pynvml.nvmlDeviceGetHandleByUUID, f"GPU-{wanted}")
            if handle is not None:
                return handle, self._index_of(handle), "uuid"
        if identity.pci_bus_id:
            handle = self._lookup(pynvml.nvmlDeviceGetHandleByPciBusId, identity.pci_bus_id)
            if handle is not None:
                return handle, self._index_of(handle), "pci_bus_id"
        return self._enumerate(identity, visible)

    def _lookup(self, lookup: Callable[[str], Any], key: str) -> Any:
        """A handle, or None when NVML does not know ``key``; permission and lost-GPU errors are raised."""
        try:
            return lookup(key)
        except NVMLError as err:
            if getattr(err, "value", None) in (NVML_ERROR_NOT_FOUND, NVML_ERROR_INVALID_ARGUMENT):
                return None
            raise translate_nvml_error(err, f"open the GPU {key}", setting_up=True) from err

    def _index_of(self, handle: Any) -> int:
        return int(self._call(pynvml.nvmlDeviceGetIndex, "read the GPU's NVML index", handle, setting_up=True))

    def _enumerate(self, identity: TorchIdentity, visible: str | None) -> tuple[Any, int, str]:
        """Match by CUDA_VISIBLE_DEVICES or ordinal over every GPU NVML lists, skipping ones we may not open."""
        count = self._call(pynvml.nvmlDeviceGetCount, "count GPUs", setting_up=True)
        handles: list[Any] = []
        uuids: list[str] = []
        errors: dict[int, BaseException] = {}
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                uuid = nvml_text(pynvml.nvmlDeviceGetUUID(handle))
            except NVMLError as err:
                if getattr(err, "value", None) not in (NVML_ERROR_NO_PERMISSION, NVML_ERROR_GPU_IS_LOST):
                    raise translate_nvml_error(err, f"open GPU {index}", setting_up=True) from err
                errors[index] = err
                code = getattr(err, "value", None)
                reason = "no permission" if code == NVML_ERROR_NO_PERMISSION else "GPU is lost"
                self.skipped_gpus.append(f"NVML GPU {index} skipped: {reason} (not this job's GPU?)")
                handle, uuid = None, ""
            handles.append(handle)
            uuids.append(uuid)
        pci_ids: list[str] | None = None
        if identity.pci_bus_id:
            pci_ids = [
                nvml_text(self._call(pynvml.nvmlDeviceGetPciInfo, "read PCI bus id", h, setting_up=True).busId)
                if h is not None
                else ""
                for h in handles
            ]
        match = match_nvml_device(self.torch_index, visible, uuids, identity.uuid, pci_ids, identity.pci_bus_id)
        if match.nvml_index in errors:
            refused = errors[match.nvml_index]
            raise translate_nvml_error(refused, f"open GPU {match.nvml_index}", setting_up=True) from refused
        return handles[match.nvml_index], match.nvml_index, match.matched_by

    def _refuse_mig(self) -> None:
        try:
            current, _pending = pynvml.nvmlDeviceGetMigMode(self._handle)
        except NVMLError as err:
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
        if self._instant_power:
            try:
                (field,) = pynvml.nvmlDeviceGetFieldValues(self._handle, [NVML_FI_DEV_POWER_INSTANT])
                if field.nvmlReturn == 0:
                    return float(field.value.uiVal) / 1000.0
            except NVMLError:
                pass
            self._instant_power = False  # not on this GPU or driver: the averaged reading is all there is
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
                *(
                    (
                        "window edges aligned to counter refreshes; the idle tail up to the closing refresh is "
                        f"subtracted at {self.tail_power_w:.3g} W",
                    )
                    if counter and self.align_edges
                    else ()
                ),
                *self.skipped_gpus,
                period_note,
                f"min window = max({MIN_WINDOW_FLOOR_S} s, {WINDOW_PERIODS} x update period) "
                "so end-point quantisation stays under a tenth of a window",
            ),
        )

    def open_window(self) -> Any:
        if self._poller is not None:
            return self._poller.open()
        if self.align_edges:
            return self._next_tick()
        return self._read_counter_mj(), self._clock()

    def close_window(self, window: Any) -> WindowReading:
        if self._poller is not None:
            energy_j, time_s = self._poller.close(window)
            return WindowReading(energy_j=energy_j, time_s=time_s)
        start_mj, start_s = window
        end_s = self._clock()
        tail_j = 0.0
        if self.align_edges:
            # The counter holds the value of its last refresh: wait for the next one, then take out
            # the idle energy of the stretch between the work's end and that refresh.
            end_mj, tick_s = self._next_tick()
            tail_j = self.tail_power_w * max(0.0, tick_s - end_s)
        else:
            end_mj = self._read_counter_mj()
        if end_mj < start_mj:
            raise DeviceLostError(
                f"NVML energy counter of {self.gpu_name} went backwards ({start_mj} -> {end_mj} mJ): "
                "the driver was reloaded or the GPU reset during the window"
            )
        energy_j = max(0.0, (end_mj - start_mj) * COUNTER_RESOLUTION_J - tail_j)
        return WindowReading(energy_j=energy_j, time_s=end_s - start_s)

    def _next_tick(self) -> tuple[float, float]:
        """Wait (at most two periods) for the counter's next refresh: its value and when it was seen."""
        first = self._read_counter_mj()
        deadline = self._clock() + 2 * self.update_period_s
        while True:
            now = self._clock()
            value = self._read_counter_mj()
            if value != first or now >= deadline:
                return value, now

    @property
    def tail_power_w(self) -> float:
        """Power of the idle tail after a window's work: the warmed-up idle power, else the probe's."""
        if self._idle_power_w is not None:
            return self._idle_power_w
        return self.probe_power_w or 0.0

    def measure_idle(self, duration_s: float) -> WindowReading:
        """Idle power after a short burst of work, so the GPU is out of its low-power state as in a run."""
        self.warm_up()
        reading = super().measure_idle(duration_s)
        if reading.time_s > 0:
            self._idle_power_w = reading.energy_j / reading.time_s
        return reading

    def warm_up(self, duration_s: float = WARM_UP_S) -> None:
        import torch

        device = torch.device("cuda", self.torch_index)
        with torch.cuda.device(device):
            x = torch.randn(2048, 2048, device=device)
            end = time.perf_counter() + duration_s
            while time.perf_counter() < end:
                for _ in range(4):
                    x = torch.nn.functional.normalize(x @ x, dim=1)
                torch.cuda.synchronize(device)

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
            with contextlib.suppress(NVMLError):
                pynvml.nvmlShutdown()
