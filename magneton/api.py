"""The public Python API: ``magneton.analyze(model, args) -> Report`` and ``magneton.load_report(path)``.

The ``magneton analyze`` command is a thin layer over the same pipeline; options
have the same names as the command's flags (``--min-window-s`` is
``min_window_s=``) and are checked the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magneton.errors import MagnetonError

if TYPE_CHECKING:
    from magneton.pipeline import AnalyzeOptions
    from magneton.report.model import Report

# CLI flag spellings accepted as well as the option names (``--cpu-watts-per-core``, ``--trace``).
_ALIASES = {"cpu_watts_per_core": "watts_per_core", "trace": "trace_path"}


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MagnetonError(f"option {name}={value!r}: must be an integer >= 1")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MagnetonError(f"option {name}={value!r}: must be an integer >= 0")
    return value


def _positive_float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise MagnetonError(f"option {name}={value!r}: must be a number > 0")
    return float(value)


def _non_negative_float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise MagnetonError(f"option {name}={value!r}: must be a number >= 0")
    return float(value)


def _path(name: str, value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, Path)):
        raise MagnetonError(f"option {name}={value!r}: must be a path (str or pathlib.Path)")
    return Path(value)


def _optional_str(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise MagnetonError(f"option {name}={value!r}: must be a string")
    return value


def _backend(name: str, value: Any) -> str:
    from magneton.measure.backends import BACKEND_CHOICES

    if value not in BACKEND_CHOICES:
        raise MagnetonError(f"option {name}={value!r}: choose one of {', '.join(BACKEND_CHOICES)}")
    return str(value)


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "backend": _backend,
    "device": _optional_str,
    "trials": _positive_int,
    "warmup_calls": _non_negative_int,
    "min_window_s": _positive_float,
    "idle_s": _non_negative_float,
    "watts_per_core": _positive_float,
    "trace_path": _path,
    "record_trace": _path,
    "powercap_root": _path,
    "trace_events": _path,
}


def _by_type(name: str, value: Any, hint: Any) -> Any:
    """Options without a specific check are checked against their declared type (bool, int, float, Literal)."""
    import types
    import typing

    allowed = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    if value is None:
        if type(None) in allowed:
            return None
        raise MagnetonError(f"option {name}=None: a value is required")
    for kind in allowed:
        if typing.get_origin(kind) is typing.Literal:
            if value in typing.get_args(kind):
                return value
            choices = ", ".join(map(str, typing.get_args(kind)))
            raise MagnetonError(f"option {name}={value!r}: choose one of {choices}")
        if kind is bool:
            if isinstance(value, bool):
                return value
            raise MagnetonError(f"option {name}={value!r}: must be True or False")
        if kind is int:
            return _non_negative_int(name, value)
        if kind is float:
            return _non_negative_float(name, value)
        if kind is Path:
            return _path(name, value)
    return value


def _declared_types() -> dict[str, Any]:
    """Every flat option's type hint, from the options dataclasses (the one place they are declared)."""
    import typing

    from magneton.measure.backends import BackendOptions
    from magneton.measure.options import PassOptions
    from magneton.pipeline import AnalyzeOptions

    hints: dict[str, Any] = {}
    for cls in (BackendOptions, PassOptions, AnalyzeOptions):
        hints.update(typing.get_type_hints(cls))
    return hints


def make_options(**options: Any) -> AnalyzeOptions:
    """Build validated :class:`~magneton.pipeline.AnalyzeOptions`; an unknown or bad option is a MagnetonError."""
    from magneton.pipeline import AnalyzeOptions

    known = set(AnalyzeOptions.option_owners())
    values: dict[str, Any] = {}
    for given, value in options.items():
        name = _ALIASES.get(given, given)
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known | set(_ALIASES)), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MagnetonError(
                f"unknown option {given!r}{hint}; magneton.analyze accepts: {', '.join(sorted(known | set(_ALIASES)))}"
            )
        if name in values:
            raise MagnetonError(f"option {name!r} given twice (as {given!r} too)")
        check = _CHECKS.get(name)
        if check is not None:
            values[name] = check(given, value)
        else:
            values[name] = _by_type(given, value, _declared_types().get(name))
    return AnalyzeOptions.from_flat(**values)


def _label(model_or_fn: Any) -> str:
    """A target label for a callable passed from Python: its class or function's qualified name."""
    fn = model_or_fn
    if not (hasattr(fn, "__qualname__") and hasattr(fn, "__module__")):
        fn = type(fn)
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def analyze(
    model_or_fn: Callable[..., Any],
    args: Sequence[Any] | Any = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    target: str | None = None,
    **options: Any,
) -> Report:
    """Profile one call ``model_or_fn(*args, **kwargs)`` operator by operator and return its report.

    ``options`` are those of ``magneton analyze``: ``backend`` (auto, estimate, rapl, nvml, replay),
    ``device``, ``trials``, ``warmup_calls``, ``min_window_s``, ``idle_s``, ``watts_per_core``
    (or ``cpu_watts_per_core``), ``trace_path`` (or ``trace``), ``record_trace``, ``trace_events`` (a Chrome
    trace-event timeline of one forward pass, for Perfetto), ``train`` (profile a training step: forward, backward
    on the sum of the float outputs, no optimizer; pass a :class:`magneton.TrainStep` as ``model_or_fn`` for your
    own loss, optimizer, autocast dtype and GradScaler). ``target`` names the
    workload in the report (default: the callable's qualified name).
    """
    from magneton.pipeline import analyze_workload
    from magneton.workload import TrainStep, Workload, validate_train_step

    if isinstance(model_or_fn, TrainStep):
        label = target if target is not None else _label(model_or_fn.model)
        return analyze_workload(validate_train_step(label, model_or_fn), label, make_options(**options))
    if not callable(model_or_fn):
        raise MagnetonError(
            f"magneton.analyze: the first argument must be a model or function, got {type(model_or_fn).__name__}"
        )
    if not isinstance(args, (tuple, list)):
        args = (args,)  # one tensor is the common case: analyze(model, x)
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise MagnetonError(f"magneton.analyze: kwargs must be a mapping, got {type(kwargs).__name__}")
    resolved = make_options(**options)
    label = target if target is not None else _label(model_or_fn)
    return analyze_workload(Workload(model_or_fn, tuple(args), dict(kwargs or {})), label, resolved)


def load_report(path: str | Path) -> Report:
    """Read a ``magneton.report/1`` JSON file; a clear MagnetonError for anything else."""
    from magneton.report.load import load_report as load

    return load(path)


__all__ = ["analyze", "load_report", "make_options"]
