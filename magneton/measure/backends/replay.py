"""Record energy measurements once, play them back deterministically (the ``replay`` backend).

A trace holds, for each measured key (an operator signature, the whole
forward pass, ...), the per-call energy and time of every trial, plus the idle
power, and the description of the backend that recorded it. Replaying a trace
reproduces a run's numbers exactly without its hardware, which is what tests
and bug reports need.

Trace format, JSON (the only one; a CSV variant existed briefly and had no users)::

    {
      "schema": "magneton.trace/1",
      "backend": {...BackendInfo.to_json() of the recording backend...},
      "idle_power_w": 41.5,              # or null when idle was not measured
      "measurements": {
        "<key>": [{"energy_j": 0.012, "time_s": 0.0004}, ...]   # one per trial, per call
      }
    }

Energies and times are per call, so a replay for ``rounds`` calls returns them
times ``rounds``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magneton import __version__
from magneton.atomic import write_text_atomic
from magneton.errors import BackendError, TraceError
from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading

TRACE_SCHEMA = "magneton.trace/1"
RECORDED_BY_KEY = "recorded_by"  # in the trace's backend description: which Magneton wrote it


@dataclass(frozen=True)
class Trace:
    """Per-call energy and time of every trial, by key, and who measured them."""

    backend: Mapping[str, Any]  # BackendInfo.to_json() of the recording backend
    idle_power_w: float | None
    measurements: Mapping[str, tuple[WindowReading, ...]]

    def backend_info(self) -> BackendInfo:
        data = dict(self.backend)
        return BackendInfo(
            name=str(data["name"]),
            provenance=data["provenance"],
            sensor=str(data["sensor"]),
            min_window_s=float(data.get("min_window_s") or 0.0),
            resolution_j=data.get("resolution_j"),
            update_period_s=data.get("update_period_s"),
            formula=data.get("formula"),
            constants=dict(data.get("constants") or {}),
            notes=tuple(data.get("notes") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": TRACE_SCHEMA,
            "backend": dict(self.backend),
            "idle_power_w": self.idle_power_w,
            "measurements": {
                key: [{"energy_j": r.energy_j, "time_s": r.time_s} for r in trials]
                for key, trials in self.measurements.items()
            },
        }


# ---------------------------------------------------------------------- loading


def _check_backend(backend: Any, path: Path) -> Mapping[str, Any]:
    if not isinstance(backend, dict):
        raise TraceError(f"trace {path}: 'backend' must be an object describing the recording backend")
    for field in ("name", "provenance", "sensor"):
        if field not in backend:
            raise TraceError(f"trace {path}: the recording backend has no {field!r}")
    if backend["provenance"] not in ("measured", "estimated"):
        raise TraceError(f"trace {path}: provenance {backend['provenance']!r} is neither 'measured' nor 'estimated'")
    return backend


def _number(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool):
        raise TraceError(f"trace {path}: {what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise TraceError(f"trace {path}: {what} must be a number, got {value!r}") from err
    if number != number or number < 0:  # NaN or negative energy/time cannot be replayed
        raise TraceError(f"trace {path}: {what} must be a non-negative number, got {value!r}")
    return number


def _parse_json(text: str, path: Path) -> Trace:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise TraceError(f"trace {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise TraceError(f"trace {path}: expected a JSON object with schema {TRACE_SCHEMA!r}")
    if data.get("schema") != TRACE_SCHEMA:
        raise TraceError(f"trace {path}: schema is {data.get('schema')!r}, expected {TRACE_SCHEMA!r}")
    backend = _check_backend(data.get("backend"), path)
    idle = data.get("idle_power_w")
    idle_power_w = None if idle is None else _number(idle, "idle_power_w", path)
    raw = data.get("measurements")
    if not isinstance(raw, dict):
        raise TraceError(f"trace {path}: 'measurements' must be an object mapping keys to lists of trials")
    measurements: dict[str, tuple[WindowReading, ...]] = {}
    for key, trials in raw.items():
        if not isinstance(trials, list) or not trials:
            raise TraceError(f"trace {path}: key {key!r} must have a non-empty list of trials")
        readings = []
        for i, trial in enumerate(trials):
            if not isinstance(trial, dict) or "energy_j" not in trial or "time_s" not in trial:
                raise TraceError(f"trace {path}: key {key!r} trial {i} needs 'energy_j' and 'time_s'")
            readings.append(
                WindowReading(
                    energy_j=_number(trial["energy_j"], f"key {key!r} trial {i} energy_j", path),
                    time_s=_number(trial["time_s"], f"key {key!r} trial {i} time_s", path),
                )
            )
        measurements[key] = tuple(readings)
    return Trace(backend=backend, idle_power_w=idle_power_w, measurements=measurements)


def load_trace(path: Path) -> Trace:
    """Read a JSON trace (any file name)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise TraceError(f"trace {path} does not exist (write one with --record-trace)") from err
    except (OSError, UnicodeDecodeError) as err:
        raise TraceError(f"trace {path} cannot be read: {err}") from err
    if path.suffix.lower() == ".csv" or text.startswith("# schema:"):
        raise TraceError(
            f"trace {path} looks like a CSV trace: traces are JSON only now; "
            "record it again with --record-trace FILE.json"
        )
    return _parse_json(text, path)


def write_trace(trace: Trace, path: Path) -> None:
    """Write ``trace`` as JSON, atomically (never a half-written file)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise TraceError(f"cannot write trace {path}: traces are JSON, use a .json file name")
    write_text_atomic(path, json.dumps(trace.to_json(), indent=2) + "\n")


# -------------------------------------------------------------------- recording


class TraceRecorder(EnergyBackend):
    """Wraps a backend, passes everything through, and remembers every keyed measurement."""

    def __init__(self, inner: EnergyBackend) -> None:
        self.contention_sensitive = inner.contention_sensitive
        self.inner = inner
        self.name = inner.name
        self._measurements: dict[str, list[WindowReading]] = {}
        self._idle_energy_j = 0.0
        self._idle_time_s = 0.0

    def info(self) -> BackendInfo:
        return self.inner.info()

    def open_window(self) -> Any:
        return self.inner.open_window()

    def close_window(self, window: Any) -> WindowReading:
        return self.inner.close_window(window)

    def synchronize(self) -> None:
        self.inner.synchronize()

    def measure(self, key: str, run: Callable[[], None], rounds: int) -> WindowReading:
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {rounds}")
        reading = self.inner.measure(key, run, rounds)
        self._record(key, reading, rounds)
        return reading

    def measure_timed(
        self,
        key: str,
        call: Callable[[], Any],
        rounds: int,
        min_window_s: float,
        max_rounds: int,
        calls_per_round: int = 1,
    ) -> tuple[WindowReading, int]:
        reading, done = self.inner.measure_timed(key, call, rounds, min_window_s, max_rounds, calls_per_round)
        self._record(key, reading, done * calls_per_round)
        return reading, done

    def _record(self, key: str, reading: WindowReading, calls: int) -> None:
        """Keep the window as per-call values: a replay divides by its own round count."""
        per_call = WindowReading(energy_j=reading.energy_j / calls, time_s=reading.time_s / calls)
        self._measurements.setdefault(key, []).append(per_call)

    def discard_window(self, key: str, from_end: int) -> None:
        del self._measurements[key][-from_end]

    def measure_idle(self, duration_s: float) -> WindowReading:
        reading = self.inner.measure_idle(duration_s)
        self._idle_energy_j += reading.energy_j
        self._idle_time_s += reading.time_s
        return reading

    def close(self) -> None:
        self.inner.close()

    def trace(self) -> Trace:
        idle_power_w = self._idle_energy_j / self._idle_time_s if self._idle_time_s > 0 else None
        return Trace(
            backend={**self.inner.info().to_json(), RECORDED_BY_KEY: f"magneton {__version__}"},
            idle_power_w=idle_power_w,
            measurements={key: tuple(trials) for key, trials in self._measurements.items()},
        )

    def write(self, path: Path) -> None:
        write_trace(self.trace(), path)


# --------------------------------------------------------------------- playback


class ReplayBackend(EnergyBackend):
    """Plays a trace back: the i-th request for a key gets trial i (cycling); nothing is run."""

    name = "replay"
    contention_sensitive = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.trace = load_trace(self.path)
        self._recorded = self.trace.backend_info()
        self._next_trial: dict[str, int] = {}

    def info(self) -> BackendInfo:
        # A replay of a measurement is still that measurement; of an estimate, still an estimate.
        return BackendInfo(
            name=self.name,
            provenance=self._recorded.provenance,
            sensor=f"replay of {self.path.name} (recorded with {self._recorded.sensor})",
            min_window_s=0.0,
            resolution_j=self._recorded.resolution_j,
            update_period_s=None,
            formula=self._recorded.formula,
            constants={
                "trace_path": str(self.path),
                "recorded_backend": dict(self.trace.backend),
                # Traces Magneton records say so; a hand-written one only claims its provenance.
                "recorded_by_magneton": RECORDED_BY_KEY in self.trace.backend,
                "trials_in_trace": self.trials_available,
            },
            notes=(
                f"deterministic playback of a trace recorded with the {self._recorded.name} backend: "
                "the workload still runs for capture and calibration, but no window is measured; "
                "every energy and time comes from the trace",
            ),
        )

    @property
    def trials_available(self) -> int:
        """Trials every key of the trace has; more would replay samples twice."""
        return min((len(trials) for trials in self.trace.measurements.values()), default=0)

    def open_window(self) -> Any:
        raise BackendError(
            "the replay backend only supports keyed measurements (measure / measure_idle): "
            "a trace stores energies per key, not a timeline to open windows on"
        )

    def close_window(self, window: Any) -> WindowReading:
        raise BackendError("the replay backend only supports keyed measurements (measure / measure_idle)")

    def synchronize(self) -> None:
        pass  # nothing runs, nothing to wait for

    def measure(self, key: str, run: Callable[[], None], rounds: int) -> WindowReading:
        trials = self.trace.measurements.get(key)
        if trials is None:
            known = sorted(self.trace.measurements)
            sample = ", ".join(repr(k) for k in known[:3]) + (", ..." if len(known) > 3 else "")
            raise TraceError(
                f"key {key!r} is not in trace {self.path}: the trace was recorded for a different workload "
                f"or operator graph (it has {len(known)} key(s): {sample or 'none'}); record a new trace"
            )
        i = self._next_trial.get(key, 0)
        self._next_trial[key] = i + 1
        trial = trials[i % len(trials)]
        return WindowReading(energy_j=trial.energy_j * rounds, time_s=trial.time_s * rounds)

    def measure_timed(
        self,
        key: str,
        call: Callable[[], Any],
        rounds: int,
        min_window_s: float,
        max_rounds: int,
        calls_per_round: int = 1,
    ) -> tuple[WindowReading, int]:
        # Nothing runs and a trace holds per-call values: the planned calls are the window.
        rounds = max(1, rounds)
        return self.measure(key, lambda: None, rounds * calls_per_round), rounds

    def measure_idle(self, duration_s: float) -> WindowReading:
        idle_power_w = self.trace.idle_power_w or 0.0
        return WindowReading(energy_j=idle_power_w * duration_s, time_s=duration_s)
