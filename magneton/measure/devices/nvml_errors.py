"""NVML's error codes, translated into Magneton's typed errors with what to do about them."""

from __future__ import annotations

from magneton.errors import (
    BackendError,
    BackendUnavailable,
    DeviceLostError,
    MagnetonError,
    SensorNotSupported,
    SensorPermissionError,
)

try:
    import pynvml
except ImportError:  # pragma: no cover - nvidia-ml-py is a declared dependency
    pynvml = None


class _NoNvmlError(Exception):
    """Stand-in exception type when pynvml is missing; never raised."""


# Bound at import so tests that replace the ``pynvml`` module with a mock still
# catch the real exception type their mocks raise.
NVMLError: type[Exception] = pynvml.NVMLError if pynvml is not None else _NoNvmlError

# NVML return codes (nvml.h); plain ints so a mocked module does not hide them.
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_DEVICE_MIG_ENABLE = 1


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


def nvml_text(value: str | bytes) -> str:
    # Older pynvml releases return bytes, newer ones str.
    return value.decode() if isinstance(value, bytes) else str(value)
