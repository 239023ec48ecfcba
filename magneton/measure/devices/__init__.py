"""Devices behind the energy backends: NVML's error codes and which NVML GPU is torch's ``cuda:N``.

Kept apart from the backends so the device facts can be tested (and reused, e.g. by a
future per-device diagnosis) without opening a measurement window.
"""
