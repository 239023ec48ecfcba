"""Global torch settings a target's build may change, recorded and restored per side.

A workload function can flip process-wide switches (``torch.backends.*``,
float32 matmul precision, thread count, default dtype). Each side of a diff is
built, run and replayed under the settings its own build left behind; the
settings that differ between the sides are listed in the report and are where
the knob diagnosis starts. The corpus (``magneton.corpus``) uses the same
record/apply pair for its slow and fast variants: this is the one place that
knows which settings exist.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_PRECISION = "torch.get_float32_matmul_precision"
_MATMUL_TF32 = "torch.backends.cuda.matmul.allow_tf32"


def _setting_table() -> dict[str, tuple[Callable[[], Any], Callable[[Any], None] | None]]:
    """name -> (read, write); write None for settings that can be read but not changed later."""
    import torch

    def attr(obj: Any, name: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
        return (lambda: getattr(obj, name)), (lambda value: setattr(obj, name, value))

    def dtype_name() -> str:
        return str(torch.get_default_dtype()).removeprefix("torch.")

    def set_dtype(name: str) -> None:
        torch.set_default_dtype(getattr(torch, name))

    table: dict[str, tuple[Callable[[], Any], Callable[[Any], None] | None]] = {
        "torch.get_num_threads": (torch.get_num_threads, torch.set_num_threads),
        "torch.get_num_interop_threads": (torch.get_num_interop_threads, None),  # fixed once work has started
        "torch.get_default_dtype": (dtype_name, set_dtype),
        "torch.get_float32_matmul_precision": (
            torch.get_float32_matmul_precision,
            torch.set_float32_matmul_precision,
        ),
        "torch.are_deterministic_algorithms_enabled": (
            torch.are_deterministic_algorithms_enabled,
            torch.use_deterministic_algorithms,
        ),
        "torch.backends.mkldnn.enabled": attr(torch.backends.mkldnn, "enabled"),
        "torch.backends.cudnn.enabled": attr(torch.backends.cudnn, "enabled"),
        "torch.backends.cudnn.benchmark": attr(torch.backends.cudnn, "benchmark"),
        "torch.backends.cudnn.deterministic": attr(torch.backends.cudnn, "deterministic"),
        "torch.backends.cudnn.allow_tf32": attr(torch.backends.cudnn, "allow_tf32"),
        "torch.backends.cuda.matmul.allow_tf32": attr(torch.backends.cuda.matmul, "allow_tf32"),
        "torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction": attr(
            torch.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction"
        ),
        "torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction": attr(
            torch.backends.cuda.matmul, "allow_bf16_reduced_precision_reduction"
        ),
        "torch.backends.cuda.flash_sdp_enabled": (
            torch.backends.cuda.flash_sdp_enabled,
            torch.backends.cuda.enable_flash_sdp,
        ),
        "torch.backends.cuda.mem_efficient_sdp_enabled": (
            torch.backends.cuda.mem_efficient_sdp_enabled,
            torch.backends.cuda.enable_mem_efficient_sdp,
        ),
        "torch.backends.cuda.math_sdp_enabled": (
            torch.backends.cuda.math_sdp_enabled,
            torch.backends.cuda.enable_math_sdp,
        ),
    }
    return table


@dataclass(frozen=True)
class Settings:
    """The global torch settings in force at one moment, by name."""

    values: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def get(self, name: str) -> Any:
        return self.as_dict().get(name)

    def with_value(self, name: str, value: Any) -> Settings:
        values = self.as_dict()
        values[name] = value
        # The legacy CUDA matmul TF32 flag and the float32 matmul precision are one setting: keep them agreeing.
        if name == _MATMUL_TF32 and _PRECISION in values:
            values[_PRECISION] = "high" if value else "highest"
        elif name == _PRECISION and _MATMUL_TF32 in values:
            values[_MATMUL_TF32] = value != "highest"
        return Settings(tuple(values.items()))


def record_settings() -> Settings:
    values = []
    for name, (read, _) in _setting_table().items():
        try:
            values.append((name, read()))
        except (RuntimeError, AttributeError):  # a setting this torch build does not have
            continue
    return Settings(tuple(values))


def apply_settings(settings: Settings) -> None:
    table = _setting_table()
    # The float32 matmul precision goes last and is always written: the legacy TF32 flags are views of it, and
    # torch refuses to read a precision that a later legacy write contradicts ("mix of the legacy and new APIs").
    # Written last, the precision wins, and it also clears a mixed state a legacy write left.
    ordered = sorted(settings.values, key=lambda item: item[0] == _PRECISION)
    for name, value in ordered:
        read, write = table.get(name, (None, None))
        if read is None or write is None:
            continue
        try:
            # Read just before writing: one write can change another setting (float32 matmul precision
            # rewrites the TF32 flags), so a snapshot taken up front would skip a needed write.
            if name == _PRECISION or read() != value:
                write(value)
        except (RuntimeError, ValueError, AttributeError):  # e.g. a setting the device cannot take
            continue


@contextlib.contextmanager
def applied(settings: Settings) -> Iterator[None]:
    """Run under ``settings``; whatever was in force before is restored afterwards."""
    before = record_settings()
    apply_settings(settings)
    try:
        yield
    finally:
        apply_settings(before)


@dataclass(frozen=True)
class SettingDifference:
    name: str
    a: Any
    b: Any

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "a": _json_value(self.a), "b": _json_value(self.b)}


def _json_value(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def differences(a: Settings, b: Settings) -> list[SettingDifference]:
    da, db = a.as_dict(), b.as_dict()
    return [SettingDifference(name, da.get(name), db.get(name)) for name in da if da.get(name) != db.get(name)]


__all__ = ["SettingDifference", "Settings", "applied", "apply_settings", "differences", "record_settings"]
