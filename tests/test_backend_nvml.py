"""NVML backend with pynvml mocked where it is imported: no GPU and no driver needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pynvml
import pytest
import torch

from magneton.errors import (
    BackendError,
    BackendUnavailable,
    DeviceLostError,
    SensorNotSupported,
    SensorPermissionError,
)
from magneton.measure.backends import nvml as nvml_module
from magneton.measure.backends.nvml import NvmlBackend, min_window_for_period_s
from magneton.measure.backends.power_sampling import infer_update_period_s, integrate_power_trapezoid, sample_changes
from magneton.measure.devices.cuda_nvml import match_nvml_device, parse_cuda_visible_devices

UUID_0 = "GPU-11111111-2222-3333-4444-555555555555"
UUID_1 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def nvml_error(code: int) -> Exception:
    # pynvml.NVMLError(code) returns the matching subclass, e.g. NVMLError_NoPermission.
    return pynvml.NVMLError(code)


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Two NVML GPUs; torch's cuda:0 is NVML GPU 0 (matched by UUID)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    props = {0: SimpleNamespace(uuid=UUID_0[4:]), 1: SimpleNamespace(uuid=UUID_1[4:])}
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props[i])
    with mock.patch("magneton.measure.backends.nvml.pynvml", autospec=True) as m:
        m.nvmlDeviceGetCount.return_value = 2
        m.nvmlDeviceGetHandleByIndex.side_effect = lambda i: f"handle-{i}"
        by_uuid = {UUID_0: "handle-0", UUID_1: "handle-1"}

        def handle_by_uuid(uuid: str) -> str:
            if uuid not in by_uuid:
                raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)
            return by_uuid[uuid]

        m.nvmlDeviceGetHandleByUUID.side_effect = handle_by_uuid
        m.nvmlDeviceGetHandleByPciBusId.side_effect = lambda bus: (_ for _ in ()).throw(
            nvml_error(pynvml.NVML_ERROR_NOT_FOUND)
        )
        m.nvmlDeviceGetFieldValues.side_effect = nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        m.nvmlDeviceGetIndex.side_effect = {"handle-0": 0, "handle-1": 1}.__getitem__
        m.nvmlDeviceGetUUID.side_effect = {"handle-0": UUID_0, "handle-1": UUID_1}.__getitem__
        m.nvmlDeviceGetName.side_effect = {"handle-0": "NVIDIA H100 80GB HBM3", "handle-1": "Tesla P100"}.__getitem__
        m.nvmlDeviceGetMigMode.return_value = [0, 0]
        m.nvmlDeviceGetTotalEnergyConsumption.return_value = 0
        m.nvmlDeviceGetPowerUsage.return_value = 100_000
        yield m


# ---------------------------------------------------------------- energy counter


def test_counter_mode_gives_exact_energy(nvml: Any) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [1_000, 5_000, 12_345]  # probe, open, close (mJ)
    backend = NvmlBackend(0, update_period_s=0.02, align_edges=False)
    reading = backend.close_window(backend.open_window())
    assert reading.energy_j == pytest.approx(7.345, abs=1e-12)
    assert reading.time_s >= 0
    nvml.nvmlDeviceGetTotalEnergyConsumption.assert_called_with("handle-0")
    info = backend.info()
    assert info.provenance == "measured"
    assert info.sensor == (
        "NVML nvmlDeviceGetTotalEnergyConsumption on NVIDIA H100 80GB HBM3 (NVML index 0, energy counter)"
    )
    assert info.resolution_j == 1e-3
    assert info.update_period_s == 0.02
    assert info.min_window_s == pytest.approx(0.2)  # 10 x 20 ms
    assert info.constants["matched_by"] == "uuid"
    backend.close()
    nvml.nvmlShutdown.assert_called_once_with()


def test_measure_synchronizes_the_torch_device(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [0, 100, 600]
    synchronize = mock.Mock()
    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    backend = NvmlBackend(1, update_period_s=0.01, align_edges=False)
    calls: list[int] = []
    reading = backend.measure("k", lambda: calls.append(1), rounds=1)
    assert reading.energy_j == pytest.approx(0.5, abs=1e-12)
    assert calls == [1]
    assert synchronize.call_args_list == [mock.call(1), mock.call(1)]
    assert backend.nvml_index == 1
    backend.close()


def test_counter_going_backwards_is_a_device_error(nvml: Any) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [0, 9_000, 10]
    backend = NvmlBackend(0, update_period_s=0.01, align_edges=False)
    window = backend.open_window()
    with pytest.raises(DeviceLostError, match="went backwards"):
        backend.close_window(window)


def test_update_period_is_inferred_at_start_up(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A counter that refreshes every 10 ms of a fake clock that advances 1 ms per look.
    now_s = [0.0]

    def clock() -> float:
        now_s[0] += 0.001
        return now_s[0]

    monkeypatch.setattr(
        nvml_module, "sample_changes", lambda read, duration_s: sample_changes(read, duration_s, clock=clock)
    )
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = lambda handle: int(round(now_s[0], 6) / 0.01) * 700
    backend = NvmlBackend(0)
    assert backend.update_period_s == pytest.approx(0.01, abs=1e-9)
    assert backend.min_window_s == pytest.approx(0.1, abs=1e-9)
    assert "measured at start-up" in " ".join(backend.info().notes)
    backend.close()


def test_still_counter_falls_back_to_a_conservative_period(nvml: Any) -> None:
    backend = NvmlBackend(0, probe_duration_s=0.02)  # counter stays at 0
    assert backend.update_period_s == nvml_module.FALLBACK_UPDATE_PERIOD_S
    assert backend.min_window_s == pytest.approx(1.0)
    assert "assumed" in " ".join(backend.info().notes)
    backend.close()


def test_infer_update_period_is_the_median_interval_between_changes() -> None:
    samples = [(0.000, 5), (0.004, 5), (0.010, 6), (0.015, 6), (0.020, 7), (0.031, 8), (0.035, 8), (0.040, 9)]
    # changes at 0.010, 0.020, 0.031, 0.040 -> intervals 0.010, 0.011, 0.009
    assert infer_update_period_s(samples) == pytest.approx(0.010, abs=1e-12)
    assert infer_update_period_s([(0.0, 1), (0.1, 1), (0.2, 2)]) is None


def test_sample_changes_stops_after_enough_changes() -> None:
    values = iter(range(100))
    clock = iter(i * 0.001 for i in range(1000))
    samples = sample_changes(lambda: next(values), max_duration_s=10, enough_changes=5, clock=lambda: next(clock))
    assert [v for _, v in samples] == [0, 1, 2, 3, 4, 5]


def test_min_window_is_ten_periods_with_a_floor() -> None:
    assert min_window_for_period_s(0.001) == 0.05
    assert min_window_for_period_s(0.1) == pytest.approx(1.0)


# ----------------------------------------------------------------- power polling


def test_trapezoid_integration_exact_values() -> None:
    samples = [(0.0, 100.0), (1.0, 200.0), (2.0, 200.0)]
    assert integrate_power_trapezoid(samples, 0.0, 2.0) == 350.0
    # power interpolated at 0.5 s (150 W): 0.5 * (150 + 200) / 2 + 0.5 * 200
    assert integrate_power_trapezoid(samples, 0.5, 1.5) == 187.5
    # held constant outside the samples
    assert integrate_power_trapezoid(samples, -1.0, 0.0) == 100.0
    assert integrate_power_trapezoid(samples, 2.0, 4.0) == 400.0
    assert integrate_power_trapezoid(list(reversed(samples)), 0.0, 2.0) == 350.0
    with pytest.raises(ValueError, match="no power samples"):
        integrate_power_trapezoid([], 0.0, 1.0)
    with pytest.raises(ValueError, match="before it starts"):
        integrate_power_trapezoid(samples, 1.0, 0.5)


def pre_volta(nvml: Any) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
    nvml.nvmlDeviceGetMigMode.side_effect = nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)


def test_polling_mode_integrates_constant_power_exactly(nvml: Any) -> None:
    pre_volta(nvml)
    backend = NvmlBackend(0, poll_interval_s=0.002, probe_duration_s=0.01)
    try:
        info = backend.info()
        assert backend.mode == "power polling"
        assert info.sensor == (
            "NVML nvmlDeviceGetPowerUsage every 2 ms on NVIDIA H100 80GB HBM3 (NVML index 0, power polling)"
        )
        assert info.resolution_j is None
        assert info.update_period_s == 0.002
        assert info.min_window_s == 0.05
        window = backend.open_window()
        time.sleep(0.03)
        reading = backend.close_window(window)
        assert reading.time_s >= 0.03
        assert reading.energy_j == pytest.approx(100.0 * reading.time_s, rel=1e-9)
    finally:
        backend.close()


def test_polling_mode_integrates_a_power_ramp(nvml: Any) -> None:
    # Power rising linearly in time: piecewise-linear interpolation of any samples of
    # it is exact, so the result does not depend on how punctually the thread polls.
    pre_volta(nvml)
    base_s = time.perf_counter()
    nvml.nvmlDeviceGetPowerUsage.side_effect = lambda handle: (100 + 1000 * (time.perf_counter() - base_s)) * 1e3
    backend = NvmlBackend(0, poll_interval_s=0.002, update_period_s=0.002)
    try:
        start_s = backend.open_window()
        time.sleep(0.05)
        reading = backend.close_window(start_s)
        a, b = start_s - base_s, start_s - base_s + reading.time_s
        expected_j = 100 * reading.time_s + 500 * (b**2 - a**2)
        # 1% leaves room for a poll preempted mid-call on a loaded machine; the
        # integration itself is checked exactly in test_trapezoid_integration_exact_values.
        assert reading.energy_j == pytest.approx(expected_j, rel=1e-2)
    finally:
        backend.close()


def test_polling_thread_failure_surfaces_as_typed_error(nvml: Any) -> None:
    pre_volta(nvml)
    lost = threading.Event()

    def power(handle: str) -> int:
        if lost.is_set():
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return 50_000

    nvml.nvmlDeviceGetPowerUsage.side_effect = power
    backend = NvmlBackend(0, poll_interval_s=0.001, update_period_s=0.001)
    try:
        window = backend.open_window()
        lost.set()
        time.sleep(0.02)
        with pytest.raises(DeviceLostError, match="GPU is lost"):
            backend.close_window(window)
    finally:
        backend.close()


def test_close_stops_the_polling_thread(nvml: Any) -> None:
    pre_volta(nvml)
    backend = NvmlBackend(0, poll_interval_s=0.001, update_period_s=0.001)
    poller = backend._poller
    assert poller is not None and poller._thread.is_alive()
    backend.close()
    assert not poller._thread.is_alive()
    nvml.nvmlShutdown.assert_called_once_with()


def test_no_counter_and_no_power_is_not_supported(nvml: Any) -> None:
    pre_volta(nvml)
    nvml.nvmlDeviceGetPowerUsage.side_effect = nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
    with pytest.raises(SensorNotSupported, match="neither an energy counter nor power"):
        NvmlBackend(0, update_period_s=0.01, align_edges=False)


# ---------------------------------------------------------------- device mapping


def test_parse_cuda_visible_devices_stops_at_first_invalid_entry() -> None:
    assert parse_cuda_visible_devices(None) is None
    assert parse_cuda_visible_devices("") == []
    assert parse_cuda_visible_devices("2, 0") == ["2", "0"]
    assert parse_cuda_visible_devices("0,1,-1,2") == ["0", "1"]
    assert parse_cuda_visible_devices("GPU-abc,MIG-def") == ["GPU-abc", "MIG-def"]


@pytest.mark.parametrize(
    ("torch_index", "visible", "torch_uuid", "expected"),
    [
        (0, None, None, 0),  # no hints: ordinals agree
        (1, None, None, 1),
        (0, None, UUID_1[4:], 1),  # torch's UUID (no prefix) wins over the ordinal
        (0, "0,1", UUID_1.upper(), 1),  # ... and over CUDA_VISIBLE_DEVICES
        (0, "1,0", None, 1),  # integer entries
        (1, "1,0", None, 0),
        (0, "GPU-aaaaaaaa", None, 1),  # unique UUID prefix, as CUDA allows
        (0, f"{UUID_0},{UUID_1}", None, 0),
        (1, f"{UUID_0},{UUID_1}", None, 1),
        (0, None, "GPU-ffffffff-0000-0000-0000-000000000000", 0),  # unknown UUID: ordinal fallback
    ],
)
def test_match_nvml_device(torch_index: int, visible: str | None, torch_uuid: str | None, expected: int) -> None:
    assert match_nvml_device(torch_index, visible, [UUID_0, UUID_1], torch_uuid).nvml_index == expected


def test_resolve_by_pci_bus_id_when_uuid_is_unknown() -> None:
    match = match_nvml_device(
        0,
        "0,1",
        [UUID_0, UUID_1],
        None,
        nvml_pci_bus_ids=["00000000:1A:00.0", "00000000:3B:00.0"],
        torch_pci_bus_id="00000000:3b:00.0",
    )
    assert (match.nvml_index, match.matched_by) == (1, "pci_bus_id")


@pytest.mark.parametrize(
    ("torch_index", "visible", "message"),
    [
        (2, "0,1,-1,2", "not visible with CUDA_VISIBLE_DEVICES='0,1,-1,2'"),
        (0, "", "not visible"),
        (0, "5", "names GPU 5 but NVML sees 2"),
        (0, "GPU-", "matches 2 of NVML's GPUs"),
        (3, None, "cuda:3 does not exist"),
    ],
)
def test_match_nvml_device_errors(torch_index: int, visible: str | None, message: str) -> None:
    with pytest.raises(BackendUnavailable, match=message.replace("(", r"\(").replace(")", r"\)")):
        match_nvml_device(torch_index, visible, [UUID_0, UUID_1], None)


def test_backend_maps_through_cuda_visible_devices(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", UUID_1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace())  # no uuid field
    backend = NvmlBackend(0, update_period_s=0.01)
    assert (backend.nvml_index, backend.matched_by, backend.gpu_name) == (1, "CUDA_VISIBLE_DEVICES", "Tesla P100")
    assert "NVML index 1" in backend.info().sensor
    backend.close()


def test_backend_maps_by_pci_bus_id(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    props = SimpleNamespace(uuid=None, pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    nvml.nvmlDeviceGetPciInfo.side_effect = lambda h: SimpleNamespace(
        busId={"handle-0": b"00000000:1A:00.0", "handle-1": b"00000000:3B:00.0"}[h]
    )
    backend = NvmlBackend(0, update_period_s=0.01)
    assert (backend.nvml_index, backend.matched_by) == (1, "pci_bus_id")
    backend.close()


# ------------------------------------------------------------------------ errors


def test_missing_library_is_unavailable(nvml: Any) -> None:
    nvml.nvmlInit.side_effect = nvml_error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(BackendUnavailable) as err:
        NvmlBackend(0)
    assert str(err.value) == "NVML library (libnvidia-ml.so) not found: no NVIDIA driver on this machine"
    assert type(err.value) is BackendUnavailable


def test_missing_python_package_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvml_module, "pynvml", None)
    with pytest.raises(BackendUnavailable, match="pip install nvidia-ml-py"):
        NvmlBackend(0)


def test_no_permission(nvml: Any) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = nvml_error(pynvml.NVML_ERROR_NO_PERMISSION)
    with pytest.raises(SensorPermissionError, match="NVML denied permission to read the GPU energy counter"):
        NvmlBackend(0, update_period_s=0.01)
    nvml.nvmlShutdown.assert_called_once_with()  # a failed start-up releases NVML


def test_gpu_lost_at_start_up(nvml: Any) -> None:
    nvml.nvmlDeviceGetName.side_effect = nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
    with pytest.raises(DeviceLostError, match="GPU is lost while trying to read GPU name"):
        NvmlBackend(0, update_period_s=0.01)


def test_gpu_lost_during_a_window(nvml: Any) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [0, 10, nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)]
    backend = NvmlBackend(0, update_period_s=0.01, align_edges=False)
    window = backend.open_window()
    with pytest.raises(DeviceLostError):
        backend.close_window(window)
    backend.close()


def test_other_nvml_error_while_measuring_is_a_backend_error(nvml: Any) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [0, nvml_error(pynvml.NVML_ERROR_UNKNOWN)]
    backend = NvmlBackend(0, update_period_s=0.01, align_edges=False)
    with pytest.raises(BackendError, match="NVML failed to read the GPU energy counter") as err:
        backend.open_window()
    assert not isinstance(err.value, BackendUnavailable)


def test_mig_enabled_gpu_is_refused(nvml: Any) -> None:
    nvml.nvmlDeviceGetMigMode.return_value = [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]
    with pytest.raises(SensorNotSupported, match="NVML cannot measure energy of a MIG slice"):
        NvmlBackend(0, update_period_s=0.01)


def test_mig_slice_in_cuda_visible_devices_is_refused(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-0d5a5b2c-1111-2222-3333-444444444444")
    with pytest.raises(SensorNotSupported, match="NVML cannot measure energy of a MIG slice"):
        NvmlBackend(0, update_period_s=0.01)


def test_torch_without_cuda_is_unavailable(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="torch cannot use CUDA"):
        NvmlBackend(0, update_period_s=0.01)


# ------------------------------------------------------- shared hosts, MIG, edges


def test_direct_uuid_lookup_never_opens_other_gpus(nvml: Any) -> None:
    # On a SLURM node the other job's GPU refuses its handle; looking ours up by UUID never asks for it.
    nvml.nvmlDeviceGetHandleByIndex.side_effect = nvml_error(pynvml.NVML_ERROR_NO_PERMISSION)
    backend = NvmlBackend(1, update_period_s=0.01)
    assert (backend.nvml_index, backend.matched_by, backend.gpu_name) == (1, "uuid", "Tesla P100")
    nvml.nvmlDeviceGetHandleByIndex.assert_not_called()
    nvml.nvmlDeviceGetCount.assert_not_called()
    backend.close()


def test_enumeration_skips_a_gpu_without_permission(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace())  # old torch: no uuid
    nvml.nvmlDeviceGetHandleByIndex.side_effect = lambda i: (
        "handle-0" if i == 0 else (_ for _ in ()).throw(nvml_error(pynvml.NVML_ERROR_NO_PERMISSION))
    )
    backend = NvmlBackend(0, update_period_s=0.01)
    assert (backend.nvml_index, backend.matched_by) == (0, "ordinal")
    assert "NVML GPU 1 skipped: no permission" in " ".join(backend.info().notes)
    backend.close()


def test_enumeration_refuses_when_our_own_gpu_is_lost(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace())
    nvml.nvmlDeviceGetHandleByIndex.side_effect = nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
    with pytest.raises(DeviceLostError, match="open GPU 0"):
        NvmlBackend(0, update_period_s=0.01)


def test_a_mig_uuid_is_refused(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    mig = "0d5a5b2c-1111-2222-3333-444444444444"  # torch's uuid of a MIG slice: no prefix
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=mig))
    nvml.nvmlDeviceGetHandleByUUID.side_effect = lambda uuid: (
        "mig-handle" if uuid == f"MIG-{mig}" else (_ for _ in ()).throw(nvml_error(pynvml.NVML_ERROR_NOT_FOUND))
    )
    with pytest.raises(SensorNotSupported, match=f"MIG slice .*MIG-{mig}"):
        NvmlBackend(0, update_period_s=0.01)


class FakeCounter:
    """A GPU at constant power whose mJ counter refreshes every ``period_s``; each look costs 1 ms."""

    def __init__(self, power_w: float, period_s: float) -> None:
        self.power_w, self.period_s, self.now_s = power_w, period_s, 0.0

    def clock(self) -> float:
        self.now_s += 0.001
        return self.now_s

    def read_mj(self, handle: Any = None) -> int:
        last_refresh_s = int(round(self.now_s, 9) / self.period_s) * self.period_s
        return int(last_refresh_s * self.power_w * 1000)


def test_window_edges_are_aligned_to_counter_refreshes(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCounter(power_w=100.0, period_s=0.01)
    monkeypatch.setattr(
        nvml_module, "sample_changes", lambda read, duration_s: sample_changes(read, duration_s, clock=fake.clock)
    )
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = fake.read_mj
    backend = NvmlBackend(0, clock=fake.clock)
    assert backend.probe_power_w == pytest.approx(100.0)
    errors = {}
    for aligned in (True, False):
        backend.align_edges = aligned
        worst = 0.0
        for offset_s in (0.0013, 0.0042, 0.0077):  # work starting anywhere between two refreshes
            fake.now_s += offset_s
            window = backend.open_window()
            fake.now_s += 0.0955  # the work
            reading = backend.close_window(window)
            worst = max(worst, abs(reading.energy_j - 100.0 * reading.time_s))
        errors[aligned] = worst
    # Unaligned, each edge may be off by a whole refresh (1 J at 100 W x 10 ms); aligned, by a look or two.
    assert errors[True] <= 0.25
    assert errors[False] >= 0.4
    backend.close()


def test_idle_window_follows_a_warm_up_and_sets_the_tail_power(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCounter(power_w=60.0, period_s=0.01)
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = fake.read_mj
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    backend = NvmlBackend(0, update_period_s=0.01, clock=fake.clock)
    order: list[str] = []
    monkeypatch.setattr(backend, "warm_up", lambda: order.append("warm-up"))
    monkeypatch.setattr(
        nvml_module.time, "sleep", lambda s: (order.append("idle"), setattr(fake, "now_s", fake.now_s + s))
    )
    backend.measure_idle(0.2)
    assert order == ["warm-up", "idle"]
    assert backend.tail_power_w == pytest.approx(60.0, rel=0.05)
    backend.close()


def test_a_few_refreshes_fall_back_to_half_the_probe(nvml: Any) -> None:
    backend = NvmlBackend(0, probe_duration_s=0.4)  # the counter never moves
    assert backend.update_period_s == pytest.approx(0.2)
    backend.close()


def test_polling_prefers_the_instantaneous_power_field(nvml: Any) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
    field = SimpleNamespace(nvmlReturn=0, value=SimpleNamespace(uiVal=250_000))
    nvml.nvmlDeviceGetFieldValues.side_effect = None
    nvml.nvmlDeviceGetFieldValues.return_value = [field]
    backend = NvmlBackend(0, update_period_s=0.01)
    assert backend._read_power_w() == pytest.approx(250.0)
    nvml.nvmlDeviceGetFieldValues.assert_called_with("handle-0", [nvml_module.NVML_FI_DEV_POWER_INSTANT])
    backend.close()
