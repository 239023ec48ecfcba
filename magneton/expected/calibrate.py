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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
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
# Trials per sweep point: a median of 5 windows is steadier than of 3; the quick sweep takes 2 (its 30 s budget).
DEFAULT_TRIALS, QUICK_TRIALS = 5, 2
# The real-model check: rounds spread over the sweep (see RealModelCheck), each with this many trials.
REAL_MODEL_ROUNDS, REAL_MODEL_TRIALS = 3, 2

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
            "allocator": calibration_pass_options().allocator,  # the allocator state the sweep measured in
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
    measured_in, calibrating_in = data.get("allocator", "process"), calibration_pass_options().allocator
    if measured_in != calibrating_in:  # analyze measures nodes in that state: expectations must match it
        raise CalibrationCacheError(
            f"calibration cache {target} was measured with the allocator {measured_in!r}, this Magneton "
            f"calibrates and analyzes with it {calibrating_in!r}; rebuilding it"
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
    backend: EnergyBackend,
    device: str = "cpu",
    quick: bool = False,
    progress: Progress | None = None,
    between_chunks: Callable[[int, int], None] | None = None,
) -> list[Point]:
    """Measure the microbenchmark sweep (``--quick``: about a fifth of it, float32 only).

    ``between_chunks(index, count)`` runs before chunk ``index`` of ``count`` and once more after the last
    (index == count): the real-model check measures there, interleaved with the sweep.
    """
    import torch

    from magneton.expected.sweep import DEFAULT_SCALE, QUICK_SCALE, SweepProgram, build_sweep, chunks
    from magneton.workload import Workload

    cases = build_sweep(QUICK_SCALE if quick else DEFAULT_SCALE, device)
    points: list[Point] = []
    done = 0
    parts = chunks(cases, SWEEP_CHUNK)
    with torch.no_grad():
        for index, chunk in enumerate(parts):
            if between_chunks:
                between_chunks(index, len(parts))
            if progress:
                progress(done, len(cases), f"sweep: {chunk[0].name} .. {chunk[-1].name}")
            program = SweepProgram(chunk)
            inputs = tuple(t for case in chunk for t in case.inputs)
            options = calibration_pass_options(trials=QUICK_TRIALS if quick else DEFAULT_TRIALS)
            points.extend(measure_workload(Workload(program, inputs), backend, "sweep", options))
            done += len(chunk)
    if between_chunks:
        between_chunks(len(parts), len(parts))
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


class RealModelCheck:
    """The real models' measured nodes (evaluation only), in rounds spread over the sweep.

    The machine's speed drifts over a calibration run (on our shared VMs one model's nodes measured 1.3-1.6x
    slower in one run than in the next, uniformly): measured in one block after the sweep, a drift during that
    block reads as model error. Each model is measured ``REAL_MODEL_ROUNDS`` times, at the start, the middle
    and the end of the sweep, and each node keeps the median of its rounds.
    """

    def __init__(self, device: str = "cpu") -> None:
        from magneton.capture import capture

        self.models: list[tuple[str, Workload, OpGraph]] = []
        self.skipped: list[str] = []
        for name, build in real_model_workloads(device):
            try:
                workload = build()
            except ImportError as err:
                self.skipped.append(f"{name}: {err} (install magneton[hf])")
                continue
            self.models.append((name, workload, capture(workload)))
        self.rounds: list[list[Point]] = []

    def measure_round(self, backend: EnergyBackend, progress: Callable[[str], None] | None = None) -> None:
        """One energy pass per model with analyze's own settings (operand rotation included)."""
        from magneton.measure.energy_pass import run_energy_pass
        from magneton.measure.options import PassOptions

        options = PassOptions(trials=REAL_MODEL_TRIALS, min_trials=REAL_MODEL_TRIALS, idle_s=0.05)
        measured: list[Point] = []
        for name, workload, graph in self.models:
            if progress:
                progress(f"real model: {name} (round {len(self.rounds) + 1} of {REAL_MODEL_ROUNDS})")
            result = run_energy_pass(graph, workload, backend, options)
            measured.extend(points_from_pass(graph, result, f"model:{name}"))
        self.rounds.append(measured)

    def points(self) -> list[Point]:
        """One point per measured signature: the median energy and time of its rounds."""
        import statistics

        # Signatures that share a shape group (a mul by 0.5 and by 0.044715) keep their order in every round.
        by_key: dict[tuple[str, str, int], list[Point]] = {}
        for measured in self.rounds:
            occurrences: Counter[tuple[str, str]] = Counter()
            for point in measured:
                occurrences[point.origin, point.group] += 1
                by_key.setdefault((point.origin, point.group, occurrences[point.origin, point.group]), []).append(point)
        return [
            replace(
                seen[0],
                energy_j=statistics.median(p.energy_j for p in seen),
                time_s=statistics.median(p.time_s for p in seen),
            )
            for seen in by_key.values()
        ]


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
    notes: list[str] = []
    check = RealModelCheck(device) if real_models else None
    if check is not None:
        notes.extend(f"real-model check skipped {reason}" for reason in check.skipped)
    where = [0.0, 1.0]  # the sweep's progress, which a real-model round's message keeps

    def sweep_progress(done: float, total: float, what: str) -> None:
        where[:] = [done, total]
        if progress:
            progress(done, total, what)

    def between_chunks(index: int, count: int) -> None:
        # Real-model rounds before the first chunk, before the middle one and after the last.
        if check is not None and index in {0, count // 2, count}:
            check.measure_round(backend, lambda what: sweep_progress(where[0], where[1], what))

    points = run_sweep(backend, device, quick, sweep_progress, between_chunks)
    if check is not None:
        points.extend(check.points())
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
    "RealModelCheck",
    "CalibrationCacheError",
    "DeviceFingerprint",
    "cache_dir",
    "cache_path",
    "calibrate",
    "fingerprint",
    "load_calibration",
    "measure_workload",
    "points_from_pass",
    "run_sweep",
]
