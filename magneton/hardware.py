"""Describing the hardware a report was measured on."""

from __future__ import annotations

import platform


def device_description(device: str) -> str:
    """``cuda:0`` -> the GPU's name; ``cpu`` -> the CPU model and architecture."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    from magneton.measure.backends.cpu_power import cpu_model_name

    return f"{cpu_model_name()} ({platform.machine()})"
