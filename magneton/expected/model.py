"""The expected-energy regression: what an operator of this kind and shape should cost here.

Two stages, predicting log energy (joules per call):

1. **A cost line per op**: ``E = overhead_j + joules_per_work_s * work_s``, fitted (robust least squares in
   log space) on the op's well-laid-out calibration points, where ``work_s`` is the node's FLOPs and bytes
   at this machine's best observed rates. It is the roofline with a fixed dispatch cost: every op gets its
   own launch overhead and its own sustained rate (a tanh costs ~10x a mul per element here). Ops with
   fewer than ``MIN_LINE_POINTS`` points use their family's line, then the machine's.
2. **scikit-learn's** ``HistGradientBoostingRegressor`` on the residual (log joules minus the line's), from
   the op family and name, log FLOPs, bytes, output size and work, dtype width, layout, device, threads
   and the line's own value: it learns what a straight line cannot (cache regimes, BLAS blocking,
   per-shape kernels, the shape of the knee). Trees predict in steps; the residual is averaged over
   sizes from half to twice the node's (``RESIDUAL_SIZE_OFFSETS``), so predictions grow smoothly with
   size. Unsmoothed, a step made a bigger add cost half a smaller one; constraining the trees to be
   monotonic in size instead cost 2-6 points of MdAPE on recorded data.

Why: boosted trees alone predict a constant per leaf, so between sweep points of one op they stepped by
up to 2x and, with a handful of points per op, pooled ops of very different per-element cost. The line
interpolates with the right slope and lets the trees spend their leaves on real deviations (on seven
calibrations recorded on our 2-core VM, mean MdAPE on left-out shapes 37% -> 21% and on real-model
nodes 20% -> 15%). Both stages train in well under a second on a few hundred points, so the cache stores
measurements (plain JSON) and the model is retrained on load: nothing is ever unpickled.

Beyond the largest calibrated work the trees are flat and the line carries the prediction: cost
proportional to work, the roofline's large-size limit.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from magneton.expected.features import NodeFeatures, Throughput, numeric_row

MODEL_NAME = "hist-gradient-boosting log-energy regression over per-op cost lines"
MODEL_VERSION = 2
MIN_LINE_POINTS = 3  # an op needs this many well-laid-out points for a cost line of its own (else its family's)
# The residual is averaged over sizes from half to twice the node's (log2 offsets): trees predict in steps,
# and between neighbouring sizes a step made a bigger add cost half a smaller one; averaged, steps shrink
# to a few percent and real-model error fell too (see the module doc).
RESIDUAL_SIZE_OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0)
HELDOUT_FRACTION_BUCKETS = 5  # one shape group in five is left out for the held-out figure
SURPRISE_QUANTILE = 90  # percentile of measured/predicted on left-out shapes: how far the model is routinely low
MIN_BAND_POINTS = 5  # a family needs this many left-out points for a band of its own (else all families')
_MAX_CATEGORIES = 250
# Squared error of log joules; six points per leaf so one noisy window cannot own a leaf. (On a busy
# 2-core VM, absolute-error loss, shallower trees and slower learning all did worse on held-out data.)
REGRESSOR: dict[str, Any] = {
    "loss": "squared_error",
    "learning_rate": 0.08,
    "max_iter": 300,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 6,
    "l2_regularization": 0.1,
}  # HistGradientBoosting's categorical limit (255 bins) with room for missing


@dataclass(frozen=True)
class Point:
    """One measured operator call: its features and its joules (per call), and where it came from."""

    features: NodeFeatures
    energy_j: float
    time_s: float
    group: str  # shape group: layout and dtype variants of one shape are left out together
    origin: str  # "sweep", "model:<name>" (evaluation only, never trained on), "learned:<target>"

    def to_json(self) -> dict[str, Any]:
        return {
            "features": self.features.to_json(),
            "energy_j": self.energy_j,
            "time_s": self.time_s,
            "group": self.group,
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Point:
        point = cls(
            features=NodeFeatures.from_json(data["features"]),
            energy_j=float(data["energy_j"]),
            time_s=float(data["time_s"]),
            group=str(data["group"]),
            origin=str(data["origin"]),
        )
        if not (point.energy_j > 0 and math.isfinite(point.energy_j)):
            raise ValueError(f"energy_j must be a positive number, got {data['energy_j']!r}")
        return point

    @property
    def trainable(self) -> bool:
        return not self.origin.startswith("model:")


@dataclass(frozen=True)
class Accuracy:
    """Held-out error: median absolute percentage error of joules, and R² of log joules."""

    mdape: float  # fraction: 0.12 is 12%
    r2: float
    points: int
    on: str  # what was held out

    def describe(self) -> str:
        if self.points == 0:
            return f"{self.on}: no points"
        return f"{self.on}: MdAPE {self.mdape:.1%}, R² {self.r2:.2f} ({self.points} points)"

    def to_json(self) -> dict[str, Any]:
        return {
            "on": self.on,
            "mdape": _finite(self.mdape),
            "r2": _finite(self.r2),
            "points": self.points,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def accuracy(predicted_j: Sequence[float], measured_j: Sequence[float], on: str) -> Accuracy:
    import numpy as np

    if not measured_j:
        return Accuracy(float("nan"), float("nan"), 0, on)
    predicted = np.asarray(predicted_j, dtype=float)
    measured = np.asarray(measured_j, dtype=float)
    mdape = float(np.median(np.abs(predicted - measured) / measured))
    log_p, log_m = np.log(predicted), np.log(measured)
    total = float(np.sum((log_m - log_m.mean()) ** 2))
    r2 = 1.0 - float(np.sum((log_m - log_p) ** 2)) / total if total > 0 else float("nan")
    return Accuracy(mdape, r2, len(measured), on)


def heldout_group(group: str) -> bool:
    """Deterministic: the same shape group is held out on every machine and every run."""
    return zlib.crc32(group.encode()) % HELDOUT_FRACTION_BUCKETS == 0


_COMPUTE_FAMILIES = ("matmul", "conv", "attention")  # where a machine shows its FLOP/s ceiling
_STREAMING_FAMILIES = ("copy", "unary", "binary", "cat")  # and its bandwidth


def _best_rate(points: Sequence[Point], quantity: str, families: Sequence[str] | None = None) -> float | None:
    """The 95th percentile of ``quantity`` ("flops" or "bytes") per second over these points (one lucky window is
    no peak); only the given families when named. None when no point did any of it."""
    import numpy as np

    rates = [
        getattr(p.features, quantity) / p.time_s
        for p in points
        if p.time_s > 0 and getattr(p.features, quantity) > 0 and (families is None or p.features.family in families)
    ]
    return float(np.percentile(rates, 95)) if rates else None


def _throughput(points: Sequence[Point]) -> Throughput:
    """Rates that turn FLOPs and bytes into seconds of work (the ``log_work`` feature), over every point."""
    flops_per_s = _best_rate(points, "flops") or 1e9
    bytes_per_s = _best_rate(points, "bytes") or 1e9
    return Throughput(max(flops_per_s, 1.0), max(bytes_per_s, 1.0))


@dataclass(frozen=True)
class CostLine:
    """``overhead_j + joules_per_work_s * work_s``: one op's (or family's) fixed cost and sustained rate."""

    overhead_j: float
    joules_per_work_s: float
    points: int

    def log_energy(self, work_s: float) -> float:
        return math.log(self.overhead_j + self.joules_per_work_s * work_s)


# Pull (in log units, per point's worth of evidence) of a line's coefficients toward its parent's: an op
# measured only at large sizes says nothing about its overhead, one measured only at small sizes nothing about
# its rate, and the parent's (family's, then the machine's) value fills in what the points do not pin down.
PRIOR_WEIGHT = (0.5, 0.02)  # (overhead, rate)


def fit_cost_line(work_s: Sequence[float], energy_j: Sequence[float], parent: CostLine | None = None) -> CostLine:
    """Robust (soft-L1) least squares of log energy; both coefficients positive (fitted as logs), shrunk toward
    ``parent``'s where given."""
    import numpy as np
    from scipy.optimize import least_squares

    work, log_energy = np.asarray(work_s, dtype=float), np.log(np.asarray(energy_j, dtype=float))
    prior = None if parent is None else np.log([parent.overhead_j, parent.joules_per_work_s])
    weights = np.asarray(PRIOR_WEIGHT)

    def residuals(theta: Any) -> Any:
        fit = np.logaddexp(theta[0], theta[1] + np.log(work)) - log_energy
        return fit if prior is None else np.concatenate([fit, weights * (theta - prior)])

    start = prior if prior is not None else [float(log_energy.min()), float(np.median(log_energy - np.log(work)))]
    fitted = least_squares(residuals, start, loss="soft_l1", f_scale=0.2)
    return CostLine(math.exp(fitted.x[0]), math.exp(fitted.x[1]), len(work))


class ExpectedModel:
    """A fitted regression; ``predict_j`` takes features as given, ``expected_j`` their ideal layout."""

    def __init__(self, points: Sequence[Point], fingerprint_key: str = "") -> None:
        import numpy as np
        from sklearn.ensemble import HistGradientBoostingRegressor

        train = [p for p in points if p.trainable]
        if len(train) < 8:
            raise ValueError(f"the expected-energy model needs at least 8 calibration points, got {len(train)}")
        self.points = len(train)
        self.learned_points = sum(1 for p in train if p.origin.startswith("learned:"))
        self.throughput = _throughput(train)
        # The roofline: best FLOP/s of compute-heavy families, best byte/s of streaming ones.
        self.peak_flops_per_s = _best_rate(train, "flops", _COMPUTE_FAMILIES)
        self.peak_bytes_per_s = _best_rate(train, "bytes", _STREAMING_FAMILIES)
        self.families = _vocabulary(p.features.family for p in train)
        self.ops = _vocabulary(p.features.op for p in train)
        self.op_lines, self.family_lines, self.machine_line = self._fit_lines(train)
        rows = self._rows([p.features for p in train])
        target = np.log([p.energy_j for p in train]) - self._line_log_j([p.features for p in train])
        self.regressor = HistGradientBoostingRegressor(
            categorical_features=[0, 1], early_stopping=False, random_state=0, **REGRESSOR
        )
        with _one_thread():
            self.regressor.fit(rows, target)
        self.family_points = dict(Counter(p.features.family for p in train))
        self.op_points = dict(Counter(p.features.op for p in train))
        # This machine's best observed rates per family (95th percentile), to say how far below them a node runs.
        self.family_flops_per_s: dict[str, float] = {}
        self.family_bytes_per_s: dict[str, float] = {}
        for family in self.family_points:
            flops_per_s, bytes_per_s = _best_rate(train, "flops", [family]), _best_rate(train, "bytes", [family])
            if flops_per_s is not None:
                self.family_flops_per_s[family] = flops_per_s
            if bytes_per_s is not None:
                self.family_bytes_per_s[family] = bytes_per_s
        # How far below the measurement this model routinely predicts, per family (set by fit_and_evaluate from
        # shapes it never saw): a node is only surprising beyond that.
        self.underprediction: dict[str, float] = {}
        self.underprediction_all = 1.0
        self.identity = (
            f"{MODEL_NAME} v{MODEL_VERSION} (scikit-learn HistGradientBoostingRegressor; "
            f"{self.points} calibration points, {self.learned_points} learned"
            + (f"; device {fingerprint_key}" if fingerprint_key else "")
            + ")"
        )

    def _fit_lines(self, train: Sequence[Point]) -> tuple[dict[str, CostLine], dict[str, CostLine], CostLine]:
        """Cost lines on well-laid-out points (expected energy is the ideal layout's); all points where too few."""
        ideal = [p for p in train if p.features.well_laid_out] or list(train)
        by_op: dict[str, list[Point]] = {}
        by_family: dict[str, list[Point]] = {}
        for p in ideal:
            by_op.setdefault(p.features.op, []).append(p)
            by_family.setdefault(p.features.family, []).append(p)

        def fit(chosen: Sequence[Point], parent: CostLine | None = None) -> CostLine:
            work_s = [self.throughput.work_s(p.features) for p in chosen]
            return fit_cost_line(work_s, [p.energy_j for p in chosen], parent)

        machine = fit(ideal)
        family_lines = {family: fit(chosen, machine) for family, chosen in by_family.items()}
        op_lines = {
            op: fit(chosen, family_lines[chosen[0].features.family])
            for op, chosen in by_op.items()
            if len(chosen) >= MIN_LINE_POINTS
        }
        return op_lines, family_lines, machine

    def cost_line(self, features: NodeFeatures) -> CostLine:
        return self.op_lines.get(features.op) or self.family_lines.get(features.family) or self.machine_line

    def _line_log_j(self, features: Sequence[NodeFeatures]) -> Any:
        import numpy as np

        return np.array([self.cost_line(f).log_energy(self.throughput.work_s(f)) for f in features])

    def _rows(self, features: Sequence[NodeFeatures]) -> Any:
        """The residual's features: categorical family and op, the numeric ones, and the line's log joules
        (where on its line the op sits: overhead-bound, at the knee, or throughput-bound)."""
        import numpy as np

        return np.array(
            [
                [
                    self.families.get(f.family, np.nan),
                    self.ops.get(f.op, np.nan),
                    *numeric_row(f, self.throughput),
                    self.cost_line(f).log_energy(self.throughput.work_s(f)),
                ]
                for f in features
            ],
            dtype=float,
        )

    def predict_j(self, features: Sequence[NodeFeatures]) -> list[float]:
        """Joules per call for these features exactly as given (layout included)."""
        import numpy as np

        if not features:
            return []
        # One predict over every (offset, node) row: rows of offset k are block k.
        rows = self._rows([_scaled(f, 2.0**offset) for offset in RESIDUAL_SIZE_OFFSETS for f in features])
        with _one_thread():
            residual = self.regressor.predict(rows).reshape(len(RESIDUAL_SIZE_OFFSETS), len(features)).mean(axis=0)
        return [float(v) for v in np.exp(self._line_log_j(features) + residual)]

    def expected_j(self, features: Sequence[NodeFeatures]) -> list[float]:
        """What the op should cost with its inputs well laid out (see ``NodeFeatures.ideal``)."""
        return self.predict_j([f.ideal() for f in features])

    def routine_underprediction(self, family: str) -> float:
        """measured / predicted that left-out shapes of this family reach routinely (90th percentile, >= 1)."""
        return self.underprediction.get(family, self.underprediction_all)

    def set_underprediction(self, families: Sequence[str], ratios: Sequence[float]) -> None:
        """The error band, from held-out (family, measured / predicted) pairs."""
        import numpy as np

        def band(values: Sequence[float]) -> float:
            return max(1.0, float(np.percentile(values, SURPRISE_QUANTILE)))

        if ratios:
            self.underprediction_all = band(ratios)
        by_family: dict[str, list[float]] = {}
        for family, ratio in zip(families, ratios, strict=True):
            by_family.setdefault(family, []).append(ratio)
        self.underprediction = {f: band(r) for f, r in by_family.items() if len(r) >= MIN_BAND_POINTS}


def _scaled(features: NodeFeatures, factor: float) -> NodeFeatures:
    """The same op at ``factor`` times the size (FLOPs, bytes and output elements alike)."""
    return replace(
        features,
        flops=round(features.flops * factor),
        bytes=round(features.bytes * factor),
        out_numel=max(1, round(features.out_numel * factor)),
    )


def _one_thread() -> Any:
    """One OpenMP thread for sklearn: the model is tiny, and on a busy machine threads fighting
    torch's (and other processes') for cores made one fit 50x slower (10 s instead of 0.2 s)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _vocabulary(values: Any) -> dict[str, int]:
    names = sorted(set(values))[:_MAX_CATEGORIES]
    return {name: index for index, name in enumerate(names)}


@dataclass(frozen=True)
class Evaluation:
    """A model fitted on every trainable point, with its held-out figures."""

    model: ExpectedModel
    shapes: Accuracy  # shapes left out of the sweep (a model refitted without them)
    models: Accuracy  # nodes of real models never in training

    @property
    def headline(self) -> Accuracy:
        """The figure that matters: real-model nodes when they were measured, else left-out shapes."""
        return self.models if self.models.points else self.shapes

    def describe(self) -> str:
        return f"{self.shapes.describe()}; {self.models.describe()}"

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model.identity, "shapes": self.shapes.to_json(), "models": self.models.to_json()}


def fit_and_evaluate(points: Sequence[Point], fingerprint_key: str = "") -> Evaluation:
    """Fit on every trainable point; held-out error from a refit without one shape group in five."""
    trainable = [p for p in points if p.trainable]
    kept = [p for p in trainable if not heldout_group(p.group)]
    left_out = [p for p in trainable if heldout_group(p.group) and p.origin == "sweep"]
    model = ExpectedModel(points, fingerprint_key)
    if left_out and len(kept) >= 8:
        partial = ExpectedModel(kept)
        predicted = partial.predict_j([p.features for p in left_out])
        shapes = accuracy(predicted, [p.energy_j for p in left_out], "left-out shapes")
        model.set_underprediction(
            [p.features.family for p in left_out], [p.energy_j / q for p, q in zip(left_out, predicted, strict=True)]
        )
    else:
        shapes = accuracy([], [], "left-out shapes")
    real = [p for p in points if not p.trainable]
    models = accuracy(model.predict_j([p.features for p in real]), [p.energy_j for p in real], "real-model nodes")
    return Evaluation(model, shapes, models)


__all__ = [
    "MODEL_NAME",
    "Accuracy",
    "CostLine",
    "Evaluation",
    "ExpectedModel",
    "Point",
    "accuracy",
    "fit_and_evaluate",
    "fit_cost_line",
    "heldout_group",
]
