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
from magneton.measure.backends.power_sampling import PowerPoller, infer_update_period_s, sample_changes
from magneton.measure.devices.cuda_nvml import match_nvml_device, normalise_uuid, refuse_mig_selection, torch_identity
from magneton.measure.devices.nvml_errors import (
    NVML_DEVICE_MIG_ENABLE,
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
DEFAULT_PROBE_DURATION_S = 0.5


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
    ) -> None:
        """``update_period_s`` skips the start-up probe of the counter's refresh period."""
        if pynvml is None:
            raise BackendUnavailable(
                "python package nvidia-ml-py (module pynvml) is not installed: pip install nvidia-ml-py"
            )
        self.torch_index = torch_device_index
        self._poller: PowerPoller | None = None
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
        except NVMLError as err:
            raise translate_nvml_error(err, action, setting_up=setting_up) from err

    def _setup(self, poll_interval_s: float, probe_duration_s: float, update_period_s: float | None) -> None:
        count = self._call(pynvml.nvmlDeviceGetCount, "count GPUs", setting_up=True)
        handles = [
            self._call(pynvml.nvmlDeviceGetHandleByIndex, f"open GPU {i}", i, setting_up=True) for i in range(count)
        ]
        uuids = [nvml_text(self._call(pynvml.nvmlDeviceGetUUID, "read GPU UUID", h, setting_up=True)) for h in handles]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        # Refuse a MIG slice before asking torch about it.
        refuse_mig_selection(self.torch_index, visible, None)
        identity = torch_identity(self.torch_index)
        pci_ids: list[str] | None = None
        if identity.uuid is None or normalise_uuid(identity.uuid) not in {normalise_uuid(u) for u in uuids}:
            pci_ids = [
                nvml_text(self._call(pynvml.nvmlDeviceGetPciInfo, "read PCI bus id", h, setting_up=True).busId)
                for h in handles
            ]
        match = match_nvml_device(self.torch_index, visible, uuids, identity.uuid, pci_ids, identity.pci_bus_id)
        self.nvml_index = match.nvml_index
        self.matched_by = match.matched_by
        self.uuid = uuids[match.nvml_index]
        self._handle = handles[match.nvml_index]
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
            self._poller = PowerPoller(self._read_power_w, poll_interval_s)
        self.poll_interval_s = poll_interval_s
        self.min_window_s = min_window_for_period_s(self.update_period_s)

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
            with contextlib.suppress(NVMLError):
                pynvml.nvmlShutdown()
