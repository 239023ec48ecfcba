"""The regression and its cache: round trip, corrupt and stale caches rebuilt, monotonic predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from expected_helpers import (
    BYTES_PER_S,
    FINGERPRINT,
    OVERHEAD_S,
    WATTS,
    cost_j,
    features,
    matmul_features,
    synthetic_calibration,
)

from magneton.expected import pipeline
from magneton.expected.calibrate import (
    CACHE_ENV,
    Calibration,
    CalibrationCacheError,
    DeviceFingerprint,
    cache_path,
    load_calibration,
)
from magneton.expected.features import FEATURE_VERSION
from magneton.expected.model import ExpectedModel, Point, fit_and_evaluate


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path


def test_cache_round_trip(cache: Path) -> None:
    calibration = synthetic_calibration(60)
    path = calibration.save()
    assert path == cache_path(FINGERPRINT) and path.parent == cache
    text = path.read_text()
    assert json.loads(text)["schema"] == "magneton.calibration/1"  # plain JSON, nothing pickled
    loaded = load_calibration(FINGERPRINT)
    assert loaded is not None
    assert loaded.points == calibration.points
    assert loaded.fingerprint == FINGERPRINT and loaded.sweep == "quick"
    # Retrained on load: the same data gives the same predictions.
    probe = [matmul_features(64, 64, 64)]
    assert ExpectedModel(loaded.points).predict_j(probe) == ExpectedModel(calibration.points).predict_j(probe)


def test_no_cache_is_none(cache: Path) -> None:
    assert load_calibration(FINGERPRINT) is None


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is unreadable"),
        ('{"schema": "something/else"}', "is not a magneton.calibration/1 file"),
        (
            f'{{"schema": "magneton.calibration/1", "feature_version": {FEATURE_VERSION}, "fingerprint": {{}}}}',
            "is corrupt",
        ),
        ('{"schema": "magneton.calibration/1", "feature_version": 999}', "feature version 999"),
    ],
)
def test_corrupt_cache_is_a_clear_error(cache: Path, content: str, message: str) -> None:
    path = cache_path(FINGERPRINT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    with pytest.raises(CalibrationCacheError, match=message) as err:
        load_calibration(FINGERPRINT)
    assert str(path) in str(err.value) and "rebuilding" in str(err.value)


def test_stale_fingerprint_is_a_clear_error(cache: Path) -> None:
    other = DeviceFingerprint("cpu", "Test CPU", 2, "2.99.0", "estimate@10.0W/core")
    data = synthetic_calibration(40).to_json()
    data["fingerprint"]["torch_version"] = other.torch_version
    path = cache_path(FINGERPRINT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationCacheError, match="is stale: it was measured on .*torch 2.99.0"):
        load_calibration(FINGERPRINT)


def test_a_cache_measured_in_another_allocator_state_is_rebuilt(cache: Path) -> None:
    # Nodes are measured with glibc's allocator settled (magneton.measure.allocator): a sweep measured with the
    # allocator as found carries other page-fault costs, so its expectations would not match.
    data = synthetic_calibration(40).to_json()
    assert data["allocator"] == "settled"
    del data["allocator"]  # written before the settled state existed
    path = cache_path(FINGERPRINT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationCacheError, match="allocator 'process'.*'settled'; rebuilding it"):
        load_calibration(FINGERPRINT)


class _Backend:
    def info(self):
        from magneton.measure.backends.base import BackendInfo

        return BackendInfo("estimate", "estimated", "test", 0.01, constants={"watts_per_core": 10.0})


@pytest.mark.parametrize("problem", ["corrupt", "stale"])
def test_corrupt_or_stale_cache_is_rebuilt(cache: Path, monkeypatch: pytest.MonkeyPatch, problem: str) -> None:
    monkeypatch.setattr(pipeline, "fingerprint", lambda backend, device: FINGERPRINT)
    path = cache_path(FINGERPRINT)
    path.parent.mkdir(parents=True, exist_ok=True)
    if problem == "corrupt":
        path.write_bytes(b"\x80\x04\x95 pickled bytes are never loaded")
    else:
        data = synthetic_calibration(40).to_json()
        data["fingerprint"]["threads"] = 64
        path.write_text(json.dumps(data))
    rebuilt: list[bool] = []

    def fake_calibrate(backend, device, quick, real_models, progress):
        rebuilt.append(quick)
        calibration = synthetic_calibration(40)
        calibration.save()
        return calibration, []

    monkeypatch.setattr(pipeline, "calibrate", fake_calibrate)
    said: list[str] = []
    calibration, notes = pipeline.obtain_calibration(_Backend(), "cpu", say=said.append)  # type: ignore[arg-type]
    assert rebuilt == [True]  # the quick sweep ran
    assert calibration is not None and calibration.fingerprint == FINGERPRINT
    assert any(("unreadable" if problem == "corrupt" else "stale") in line for line in said)
    assert any("running the quick sweep" in line for line in said)
    assert load_calibration(FINGERPRINT) is not None  # the rebuilt cache is valid
    assert any("quick calibration measured now" in note for note in notes)


def test_predictions_monotonic_in_matmul_size() -> None:
    model = ExpectedModel(synthetic_calibration(300).points)
    sizes = [8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 4096]
    predicted = model.predict_j([matmul_features(s, s, s) for s in sizes])
    assert all(b >= a for a, b in zip(predicted, predicted[1:], strict=False)), predicted
    # Beyond the largest calibrated matmul the prediction keeps growing with the work.
    assert predicted[-1] > 4 * predicted[-3]


def test_heldout_accuracy_on_synthetic_data() -> None:
    evaluation = fit_and_evaluate(synthetic_calibration(400).points)
    assert evaluation.shapes.points > 20
    assert evaluation.shapes.mdape < 0.25 and evaluation.shapes.r2 > 0.9
    assert evaluation.models.points == 0


def test_expected_uses_ideal_layout() -> None:
    model = ExpectedModel(synthetic_calibration(300).points)
    contiguous = features("norm", "layer_norm", 7 * 2**16, 8 * 2**16, 2**16)
    strided = features("norm", "layer_norm", 7 * 2**16, 8 * 2**16, 2**16, noncontiguous=1)
    assert model.expected_j([strided]) == model.expected_j([contiguous])
    assert contiguous.well_laid_out and not strided.well_laid_out
    assert model.expected_j([contiguous])[0] == pytest.approx(cost_j(contiguous.flops, contiguous.bytes), rel=0.3)


def test_too_few_points_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        ExpectedModel(synthetic_calibration(300).points[:3])


def test_learned_points_are_kept_and_capped(cache: Path) -> None:
    calibration: Calibration = synthetic_calibration(40)
    learned = [p.__class__(p.features, p.energy_j, p.time_s, p.group, "learned:t") for p in calibration.points[:5]]
    assert calibration.add_learned(learned) == 5
    assert calibration.add_learned(learned) == 0  # the same node twice is one point
    calibration.save()
    loaded = load_calibration(FINGERPRINT)
    assert loaded is not None and sum(p.origin == "learned:t" for p in loaded.points) == 5
    assert ExpectedModel(loaded.points).learned_points == 5


def test_cost_line_recovers_overhead_and_rate() -> None:
    from magneton.expected.model import fit_cost_line

    work = [1e-8 * 4**i for i in range(10)]
    energy = [2e-5 + 12.0 * w for w in work]
    line = fit_cost_line(work, energy)
    assert line.overhead_j == pytest.approx(2e-5, rel=0.05)
    assert line.joules_per_work_s == pytest.approx(12.0, rel=0.05)


def test_cost_line_takes_what_its_points_leave_open_from_its_parent() -> None:
    from magneton.expected.model import CostLine, fit_cost_line

    parent = CostLine(overhead_j=3e-5, joules_per_work_s=10.0, points=100)
    # Three large, throughput-bound points: they fix the rate but say nothing about the overhead.
    work = [1e-3, 2e-3, 4e-3]
    line = fit_cost_line(work, [20.0 * w for w in work], parent)
    assert line.joules_per_work_s == pytest.approx(20.0, rel=0.05)
    assert line.overhead_j == pytest.approx(3e-5, rel=0.5)
    # Without a parent, nothing holds the overhead to a plausible value.
    assert line.overhead_j < 1e-3


def test_each_op_gets_its_own_cost_per_element() -> None:
    # Two elementwise ops of one family, one 8x dearer per element: the model must not pool them.
    points = []
    for i in range(8):
        n = 2 ** (8 + 2 * i)
        for op, slowdown in (("mul", 1.0), ("tanh", 8.0)):
            f = features("unary", op, n, 8 * n, n)
            energy = WATTS * (OVERHEAD_S + slowdown * 8 * n / BYTES_PER_S)
            points.append(Point(f, energy, energy / WATTS, f"unary:{op}({n})", "sweep"))
    model = ExpectedModel(points)
    n = 3 * 2**17  # between two calibrated sizes
    mul, tanh = model.predict_j([features("unary", op, n, 8 * n, n) for op in ("mul", "tanh")])
    assert tanh / mul == pytest.approx(8.0, rel=0.25)
    assert mul == pytest.approx(WATTS * (OVERHEAD_S + 8 * n / BYTES_PER_S), rel=0.15)


def test_real_model_rounds_are_spread_over_the_sweep(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from magneton.expected import calibrate as calibrate_module
    from magneton.measure.backends.estimate import EstimateBackend
    from magneton.workload import Workload

    events: list[str] = []
    monkeypatch.setattr(calibrate_module, "SWEEP_CHUNK", 10)  # the quick sweep's ~120 cases: 12 chunks
    monkeypatch.setattr(calibrate_module, "measure_workload", lambda *args, **kwargs: events.append("chunk") or [])
    tiny = Workload(torch.nn.Linear(4, 4), (torch.ones(2, 4),))
    monkeypatch.setattr(calibrate_module, "real_model_workloads", lambda device: [("tiny", lambda: tiny)])
    energies = iter([3e-4, 1e-4, 2e-4])  # the three rounds' measurements of the model's one operator

    def measure_round(self, backend, progress=None) -> None:
        events.append("round")
        f, energy_j = features("matmul", "linear", 64, 160, 8), next(energies)
        # Two signatures of one shape group (a mul by 0.5 and one by 0.044715 share theirs) stay two points.
        self.rounds.append([Point(f, e, 1e-5, "matmul:linear(2x4)", "model:tiny") for e in (energy_j, 10 * energy_j)])

    monkeypatch.setattr(calibrate_module.RealModelCheck, "measure_round", measure_round)
    calibration, _ = calibrate_module.calibrate(EstimateBackend(), quick=True, real_models=True)
    chunks = events.count("chunk")
    assert chunks > 2
    middle = chunks // 2
    assert events == ["round", *["chunk"] * middle, "round", *["chunk"] * (chunks - middle), "round"]
    measured = sorted(p.energy_j for p in calibration.points if p.origin == "model:tiny")
    assert measured == pytest.approx([2e-4, 2e-3])  # the median of each one's rounds, not the last or the first
