"""Global torch settings a variant's build may change, so each variant runs under its own.

A fast variant often differs from its slow twin only in a global switch (TF32,
float32 matmul precision, cuDNN benchmark, thread count). Both variants live in
one process, so the settings each one had right after its build are recorded
and re-applied around every run of that variant, then the original ones come back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TorchSettings:
    float32_matmul_precision: str
    cuda_matmul_allow_tf32: bool
    cudnn_allow_tf32: bool
    cudnn_benchmark: bool
    cudnn_enabled: bool
    mkldnn_enabled: bool
    num_threads: int
    default_dtype: str

    def differences(self, other: TorchSettings) -> dict[str, tuple[Any, Any]]:
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }


def current_settings() -> TorchSettings:
    import torch

    return TorchSettings(
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        cuda_matmul_allow_tf32=bool(torch.backends.cuda.matmul.allow_tf32),
        cudnn_allow_tf32=bool(torch.backends.cudnn.allow_tf32),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
        cudnn_enabled=bool(torch.backends.cudnn.enabled),
        mkldnn_enabled=bool(torch.backends.mkldnn.enabled),
        num_threads=torch.get_num_threads(),
        default_dtype=str(torch.get_default_dtype()).removeprefix("torch."),
    )


def apply_settings(settings: TorchSettings) -> None:
    import torch

    # Only what differs is written: setting float32 matmul precision also rewrites the TF32 flags.
    now = current_settings()
    if now.float32_matmul_precision != settings.float32_matmul_precision:
        torch.set_float32_matmul_precision(settings.float32_matmul_precision)
    if current_settings().cuda_matmul_allow_tf32 != settings.cuda_matmul_allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = settings.cuda_matmul_allow_tf32
    if current_settings().cudnn_allow_tf32 != settings.cudnn_allow_tf32:
        torch.backends.cudnn.allow_tf32 = settings.cudnn_allow_tf32
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    torch.backends.cudnn.enabled = settings.cudnn_enabled
    torch.backends.mkldnn.enabled = settings.mkldnn_enabled  # type: ignore[assignment]
    if now.num_threads != settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    torch.set_default_dtype(getattr(torch, settings.default_dtype))


@contextlib.contextmanager
def settings_applied(settings: TorchSettings) -> Iterator[None]:
    """Run a block under ``settings``; the settings from before come back afterwards."""
    before = current_settings()
    apply_settings(settings)
    try:
        yield
    finally:
        apply_settings(before)


__all__ = ["TorchSettings", "apply_settings", "current_settings", "settings_applied"]
