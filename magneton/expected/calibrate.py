"""Calibration: measure the sweep on this machine, cache the measurements, retrain the model from them.

The cache holds *measurements* as plain JSON (``magneton.calibration/1``), one
file per device fingerprint (CPU/GPU model, thread count, torch version,
backend and its constants) in the user cache directory (platformdirs, or
``$MAGNETON_CACHE_DIR``). The model is retrained from them on every load; no
file is ever unpickled. A cache that cannot be read, or whose fingerprint or
feature version does not match this machine, is reported in one sentence and
rebuilt, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magneton.atomic import write_json_atomic
from magneton.errors import MagnetonError
from magneton.expected.features import FEATURE_VERSION, NodeFeatures
from magneton.expected.model import Evaluation, Point, fit_and_evaluate

if TYPE_CHECKING:
    from magneton.graph import OpGraph
    from magneton.measure.backends.base import EnergyBackend
    from magneton.measure.energy_pass import EnergyPassResult
    from magneton.measure.options import PassOptions
    from magneton.workload import Workload

CACHE_SCHEMA = "magneton.calibration/1"
CACHE_ENV = "MAGNETON_CACHE_DIR"
MAX_LEARNED_POINTS = 5000
SWEEP_CHUNK = 40  # cases per captured program: progress granularity vs capture overhead

Progress = Callable[[float, float, str], None]  # (done, total, what) in arbitrary units


class CalibrationCacheError(MagnetonError):
    """The calibration cache could not be used; the message says why. Callers rebuild it."""


@dataclass(frozen=True)
class DeviceFingerprint:
    """What must match for cached measurements to describe this machine."""

    device: str  # "cpu" or "cuda"
    device_model: str
    threads: int
    torch_version: str
    backend: str  # backend name plus the constants that scale its joules

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return (
            f"{self.device_model} ({self.device}), {self.threads} threads, torch {self.torch_version}, "
            f"backend {self.backend}"
        )


def backend_identity(backend: EnergyBackend) -> str:
    info = backend.info()
    if info.name == "estimate":
        return f"estimate@{info.constants.get('watts_per_core')}W/core"
    return f"{info.name}:{info.sensor}"


def fingerprint(backend: EnergyBackend, device: str = "cpu") -> DeviceFingerprint:
    import torch

    from magneton.report.build import device_description

    kind = "cuda" if device.startswith("cuda") else "cpu"
    model = device_description(device) if kind == "cuda" else device_description("cpu")
    return DeviceFingerprint(kind, model, torch.get_num_threads(), torch.__version__, backend_identity(backend))


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("magneton", appauthor=False)) / "expected"


def cache_path(device_fingerprint: DeviceFingerprint) -> Path:
    return cache_dir() / f"calibration-{device_fingerprint.key}.json"


@dataclass
class Calibration:
    """Measured points for one device fingerprint, and how they were obtained."""

    fingerprint: DeviceFingerprint
    points: list[Point]
    sweep: str  # "default" or "quick"
    created_utc: str
    backend: dict[str, Any] = field(default_factory=dict)  # BackendInfo.to_json() of the measuring backend
    path: Path | None = None
    _evaluation: Evaluation | None = None

    def evaluation(self) -> Evaluation:
        """The model fitted on these points, with held-out figures (fitted once, on first use)."""
        if self._evaluation is None:
            self._evaluation = fit_and_evaluate(self.points, self.fingerprint.key)
        return self._evaluation

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": CACHE_SCHEMA,
            "feature_version": FEATURE_VERSION,
            "fingerprint": asdict(self.fingerprint),
            "sweep": self.sweep,
            "created_utc": self.created_utc,
            "backend": self.backend,
            "points": [point.to_json() for point in self.points],
        }

    def save(self, path: Path | None = None) -> Path:
        target = path or cache_path(self.fingerprint)
        write_json_atomic(target, self.to_json())
        self.path = target
        return target

    def add_learned(self, points: Sequence[Point]) -> int:
        """Append analysed nodes as training data (``--learn``); oldest learned points go first past the cap."""
        known = {(json.dumps(p.features.to_json(), sort_keys=True), p.origin) for p in self.points}
        new = [p for p in points if (json.dumps(p.features.to_json(), sort_keys=True), p.origin) not in known]
        self.points.extend(new)
        learned = [p for p in self.points if p.origin.startswith("learned:")]
        excess = len(learned) - MAX_LEARNED_POINTS
        if excess > 0:
            drop = {id(p) for p in learned[:excess]}
            self.points = [p for p in self.points if id(p) not in drop]
        self._evaluation = None
        return len(new)


def load_calibration(device_fingerprint: DeviceFingerprint, path: Path | None = None) -> Calibration | None:
    """The cached calibration for this fingerprint; None when there is none yet.

    Raises CalibrationCacheError (one sentence naming the file and the problem) for a
    corrupt, foreign-version or stale cache.
    """
    target = path or cache_path(device_fingerprint)
    if not target.exists():
        return None
    try:
        data = json.loads(target.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CalibrationCacheError(f"calibration cache {target} is unreadable ({err}); rebuilding it") from err
    if not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA:
        raise CalibrationCacheError(f"calibration cache {target} is not a {CACHE_SCHEMA} file; rebuilding it")
    if data.get("feature_version") != FEATURE_VERSION:
        raise CalibrationCacheError(
            f"calibration cache {target} was written for feature version {data.get('feature_version')!r}, "
            f"this Magneton uses {FEATURE_VERSION}; rebuilding it"
        )
    try:
        stored = DeviceFingerprint(**data["fingerprint"])
        points = [Point.from_json(item) for item in data["points"]]
    except (KeyError, TypeError, ValueError) as err:
        raise CalibrationCacheError(f"calibration cache {target} is corrupt ({err}); rebuilding it") from err
    if stored != device_fingerprint:
        raise CalibrationCacheError(
            f"calibration cache {target} is stale: it was measured on {stored.describe()}, "
            f"this run is {device_fingerprint.describe()}; rebuilding it"
        )
    if sum(1 for p in points if p.trainable) < 8:
        raise CalibrationCacheError(f"calibration cache {target} holds too few points; rebuilding it")
    return Calibration(
        stored,
        points,
        str(data.get("sweep", "default")),
        str(data.get("created_utc", "")),
        dict(data.get("backend") or {}),
        target,
    )


# --- measuring ------------------------------------------------------------------------------------------


def shape_group(features: NodeFeatures, input_shapes: Sequence[Sequence[int]], output_shapes: Any) -> str:
    """Layout and dtype variants of one shape share a group, so held-out shapes are really unseen."""
    shapes = ",".join("x".join(map(str, s)) for s in input_shapes)
    outputs = ",".join("x".join(map(str, s)) for s in output_shapes)
    return f"{features.family}:{features.op}({shapes})->{outputs}"


def points_from_pass(graph: OpGraph, result: EnergyPassResult, origin: str) -> list[Point]:
    """One point per distinct measured signature (repeated layers are one measurement, so one point)."""
    import torch

    threads = torch.get_num_threads()
    points, seen = [], set()
    for node in graph.nodes:
        measured = result.nodes.get(node.id)
        if node.zero_cost or measured is None or node.signature in seen:
            continue
        seen.add(node.signature)
        energy_j, time_s = measured.energy_j.median, measured.time_s.median
        if not (energy_j > 0 and math.isfinite(energy_j)):
            continue
        features = NodeFeatures.of(node, threads)
        group = shape_group(features, [m.shape for m in node.inputs], [m.shape for m in node.outputs])
        points.append(Point(features, energy_j, time_s, group, origin))
    return points


# The sweep replays with analyze's own operand rotation (a working set beyond the last-level cache):
# with a smaller one, memory-bound sweep points ran from cache and the real models' elementwise ops
# were predicted 2-3x too cheap.
def calibration_pass_options(trials: int = 3) -> PassOptions:
    """The energy pass's settings for the sweep: the backend's own window, short idle and forward windows."""
    from magneton.measure.options import PassOptions

    return PassOptions(
        trials=trials,
        min_trials=min(2, trials),
        warmup_calls=1,
        idle_s=0.05,
        forward_window_s=0.05,
    )


def measure_workload(
    workload: Workload, backend: EnergyBackend, origin: str, options: PassOptions | None = None
) -> list[Point]:
    """Capture and measure one program with the same machinery as ``magneton analyze``."""
    from magneton.capture import capture
    from magneton.measure.energy_pass import run_energy_pass
    from magneton.measure.options import PassOptions

    graph = capture(workload)
    result = run_energy_pass(graph, workload, backend, options or PassOptions(trials=3))
    return points_from_pass(graph, result, origin)


def run_sweep(
    backend: EnergyBackend, device: str = "cpu", quick: bool = False, progress: Progress | None = None
) -> list[Point]:
    """Measure the microbenchmark sweep (``--quick``: about a fifth of it, float32 only)."""
    import torch

    from magneton.expected.sweep import DEFAULT_SCALE, QUICK_SCALE, SweepProgram, build_sweep, chunks
    from magneton.workload import Workload

    cases = build_sweep(QUICK_SCALE if quick else DEFAULT_SCALE, device)
    points: list[Point] = []
    done = 0
    with torch.no_grad():
        for chunk in chunks(cases, SWEEP_CHUNK):
            if progress:
                progress(done, len(cases), f"sweep: {chunk[0].name} .. {chunk[-1].name}")
            program = SweepProgram(chunk)
            inputs = tuple(t for case in chunk for t in case.inputs)
            options = calibration_pass_options(trials=2 if quick else 3)
            points.extend(measure_workload(Workload(program, inputs), backend, "sweep", options))
            done += len(chunk)
    if progress:
        progress(done, len(cases), "sweep measured")
    return points


def real_model_workloads(device: str = "cpu") -> list[tuple[str, Callable[[], Workload]]]:
    """Real models never used for training: TinyGPT, and transformers' BERT and GPT-2 from small configs."""
    from magneton.workload import Workload

    def tiny_gpt() -> Workload:
        from magneton.examples.tiny_gpt import build_tiny_gpt

        model, args = build_tiny_gpt(device=device)
        return Workload(model, args)

    def bert() -> Workload:
        import torch
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=4096,
            hidden_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=1024,
            max_position_embeddings=256,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = BertModel(config).eval().to(device)
        ids = torch.randint(0, config.vocab_size, (2, 128), generator=torch.Generator().manual_seed(0))
        return Workload(model, (ids.to(device),))

    def gpt2() -> Workload:
        import torch
        from transformers import GPT2Config, GPT2Model

        config = GPT2Config(vocab_size=4096, n_embd=256, n_layer=2, n_head=4, n_positions=256)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = GPT2Model(config).eval().to(device)
        ids = torch.randint(0, config.vocab_size, (2, 128), generator=torch.Generator().manual_seed(0))
        return Workload(model, (ids.to(device),))

    return [("tinygpt", tiny_gpt), ("bert", bert), ("gpt2", gpt2)]


def measure_real_models(
    backend: EnergyBackend, device: str = "cpu", progress: Progress | None = None
) -> tuple[list[Point], list[str]]:
    """Measured nodes of the real models (evaluation only); a model that cannot be built is skipped, saying why."""
    from magneton.measure.options import PassOptions

    points: list[Point] = []
    skipped: list[str] = []
    models = real_model_workloads(device)
    for index, (name, build) in enumerate(models):
        if progress:
            progress(index, len(models), f"real model: {name}")
        try:
            workload = build()
        except ImportError as err:
            skipped.append(f"{name}: {err} (install magneton[hf])")
            continue
        # analyze's own settings (operand rotation included), fewer trials.
        points.extend(measure_workload(workload, backend, f"model:{name}", PassOptions(trials=3, idle_s=0.05)))
    if progress:
        progress(len(models), len(models), "real models measured")
    return points, skipped


def calibrate(
    backend: EnergyBackend,
    device: str = "cpu",
    quick: bool = False,
    real_models: bool = True,
    progress: Progress | None = None,
    previous: Calibration | None = None,
) -> tuple[Calibration, list[str]]:
    """Run the sweep (and the real-model check), keeping any learned points of ``previous``; save to the cache."""
    device_fingerprint = fingerprint(backend, device)
    points = run_sweep(backend, device, quick, progress)
    notes: list[str] = []
    if real_models:
        model_points, skipped = measure_real_models(backend, device, progress)
        points.extend(model_points)
        notes.extend(f"real-model check skipped {reason}" for reason in skipped)
    if previous is not None and previous.fingerprint == device_fingerprint:
        points.extend(p for p in previous.points if p.origin.startswith("learned:"))
    calibration = Calibration(
        device_fingerprint,
        points,
        "quick" if quick else "default",
        datetime.now(timezone.utc).isoformat(timespec="seconds"),
        backend.info().to_json(),
    )
    calibration.save()
    return calibration, notes


__all__ = [
    "CACHE_ENV",
    "CACHE_SCHEMA",
    "Calibration",
    "CalibrationCacheError",
    "DeviceFingerprint",
    "cache_dir",
    "cache_path",
    "calibrate",
    "fingerprint",
    "load_calibration",
    "measure_real_models",
    "measure_workload",
    "points_from_pass",
    "run_sweep",
]
