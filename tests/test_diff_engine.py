"""The diff engine: same-computation checks, settings per side, verdicts on replayed energies, knobs, CLI."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from magneton.diff.engine import DiffOptions, diff_workloads, load_sides
from magneton.diff.outputs import DiffError, check_same_outputs
from magneton.diff.report import build_diff_report
from magneton.diff.settings import applied, apply_settings, record_settings
from magneton.diff.verdict import judge
from magneton.measure.backends import BackendChoice
from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading
from magneton.measure.stats import summarize
from tests.conftest import WORKLOADS_DIR

PAIRS = f"{WORKLOADS_DIR / 'diff_pairs.py'}"


def _target(name: str) -> str:
    return f"{PAIRS}:{name}"


# ------------------------------------------------------------------------------------------ outputs


def test_output_mismatch_names_largest_difference_and_where() -> None:
    a = {"logits": torch.zeros(2, 3), "hidden": torch.ones(4)}
    b = {"logits": torch.zeros(2, 3), "hidden": torch.ones(4)}
    b["logits"][1, 2] = 0.5
    b["hidden"] = b["hidden"] * 1.0001
    with pytest.raises(DiffError) as err:
        check_same_outputs(a, b, "a.py:f", "b.py:g")
    message = str(err.value)
    assert "output.logits" in message and "[1, 2]" in message and "largest relative difference is 1 " in message
    assert "--allow-different-outputs" in message


def test_different_outputs_stop_the_diff_unless_allowed() -> None:
    loaded = load_sides(_target("mkldnn_on"), _target("different_outputs"))
    with pytest.raises(DiffError, match="do not compute the same thing"):
        diff_workloads(loaded, DiffOptions(backend="estimate"))
    result = diff_workloads(
        loaded,
        DiffOptions(backend="estimate", allow_different_outputs=True, trials=1, op_split=False, knobs=False),
        backend_choice=_fixed_choice(1e-6),
    )
    assert any("compared anyway" in note for note in result.notes)
    assert result.match.unmatched  # the last linear's results pair with nothing


def test_different_inputs_get_their_own_error() -> None:
    loaded = load_sides(_target("mkldnn_on"), _target("other_inputs"))
    with pytest.raises(DiffError, match="take different example inputs"):
        diff_workloads(loaded, DiffOptions(backend="estimate"))


# ----------------------------------------------------------------------------------------- settings


def test_each_side_keeps_the_settings_its_build_left() -> None:
    before = torch.backends.mkldnn.enabled
    loaded = load_sides(_target("mkldnn_off"), _target("mkldnn_on"))
    assert torch.backends.mkldnn.enabled == before  # restored after the builds
    settings_a, settings_b = loaded[0][2], loaded[1][2]
    assert settings_a.get("torch.backends.mkldnn.enabled") is False
    assert settings_b.get("torch.backends.mkldnn.enabled") is before
    with applied(settings_a):
        assert torch.backends.mkldnn.enabled is False
    assert record_settings() == record_settings()
    assert torch.backends.mkldnn.enabled == before


def test_settings_round_trip_through_linked_switches() -> None:
    """float32 matmul precision rewrites the TF32 flags; applying a recorded state restores all of them."""
    before = record_settings()
    try:
        torch.set_float32_matmul_precision("high" if torch.get_float32_matmul_precision() != "high" else "highest")
        changed = record_settings()
        assert changed != before
        apply_settings(before)
        assert record_settings() == before
        apply_settings(changed)
        assert record_settings() == changed
    finally:
        apply_settings(before)
    assert record_settings() == before


# ---------------------------------------------------------------------------------------- verdicts


def _s(*values: float) -> Any:
    return summarize(values)


def test_verdict_logic() -> None:
    waste = judge(_s(2.0, 2.1, 2.05, 2.02, 2.08), _s(1.0, 1.02, 1.01, 0.99, 1.0), 1.0, 1.0, 0.10)
    assert (waste.verdict, waste.costly) == ("waste", "A") and waste.ratio == pytest.approx(2.02 / 1.0, rel=0.05)
    b_costly = judge(_s(1.0, 1.01, 1.02), _s(1.5, 1.52, 1.51), 1.0, 1.0, 0.10)
    assert (b_costly.verdict, b_costly.costly) == ("waste", "B")
    same = judge(_s(1.05, 1.06, 1.04), _s(1.0, 1.01, 0.99), 1.0, 1.0, 0.10)
    assert same.verdict == "same" and "threshold" in same.reason
    assert judge(_s(1.05, 1.06, 1.04), _s(1.0, 1.01, 0.99), 1.0, 1.0, 0.02).verdict == "waste"  # 5% > 2%
    overlapping = judge(_s(1.0, 3.0, 2.0), _s(1.0, 1.2, 1.1), 1.0, 1.0, 0.10)
    assert overlapping.verdict == "same" and "overlap" in overlapping.reason
    tradeoff = judge(_s(2.0, 2.1, 2.05), _s(1.0, 1.01, 1.02), 1.0, 1.5, 0.10)
    assert tradeoff.verdict == "tradeoff" and "slower" in tradeoff.reason
    assert judge(_s(2.0, 2.1, 2.05), _s(1.0, 1.01, 1.02), 1.0, 1.005, 0.10).verdict == "waste"  # within 1%
    assert judge(_s(2.0, 2.1, 2.05), _s(1.0, 1.01, 1.02), 1.0, 1.0, 0.10, 0.05).verdict == "tradeoff"
    # Load drifting between trials widens both intervals until they overlap; the back-to-back pairs stay apart.
    drifting = judge(_s(2.0, 4.0, 3.0), _s(1.0, 2.1, 1.4), 1.0, 1.0, 0.10)
    assert (drifting.verdict, drifting.costly, drifting.confident) == ("waste", "A", True)
    # ... but not when one pair says the opposite.
    assert judge(_s(2.0, 4.0, 1.0), _s(1.0, 2.1, 1.4), 1.0, 1.0, 0.10).verdict == "same"
    # Per-trial times: the cheaper side must be slower trial by trial to make a tradeoff; one preempted trial
    # (wall time inflated, CPU energy not) leaves it waste.
    costly_t = _s(1.0, 1.0, 1.0)
    assert judge(_s(2.0, 2.1, 2.05), _s(1.0, 1.01, 1.02), costly_t, _s(1.5, 1.6, 1.4), 0.10).verdict == "tradeoff"
    assert judge(_s(2.0, 2.1, 2.05), _s(1.0, 1.01, 1.02), costly_t, _s(1.5, 1.6, 0.9), 0.10).verdict == "waste"
    only_a = judge(_s(1.0, 1.1, 1.05), None, 1.0, 0.0, 0.10)
    assert only_a.verdict == "waste" and math.isinf(only_a.ratio)


def _trace(path: Path, energies: dict[str, tuple[float, float]]) -> Path:
    """A replay trace: key -> (energy_j, time_s) per call, three slightly different trials."""
    measurements = {
        key: [{"energy_j": e * f, "time_s": t * f} for f in (1.0, 1.01, 0.99)] for key, (e, t) in energies.items()
    }
    path.write_text(
        json.dumps(
            {
                "schema": "magneton.trace/1",
                "backend": {"name": "rapl", "provenance": "measured", "sensor": "test trace"},
                "idle_power_w": 0.0,
                "measurements": measurements,
            }
        )
    )
    return path


def _replay_diff(tmp_path: Path, energies: dict[str, tuple[float, float]]) -> dict[str, Any]:
    loaded = load_sides(_target("addmm_slow"), _target("addmm_fast"))
    options = DiffOptions(
        backend="replay", trace_path=_trace(tmp_path / "t.json", energies), trials=3, op_split=False, knobs=False
    )
    return build_diff_report(diff_workloads(loaded, options)).to_dict()


def test_replayed_energies_give_a_waste_finding(tmp_path: Path) -> None:
    report = _replay_diff(
        tmp_path,
        {
            "diff.A.forward": (1.3e-3, 1e-4),
            "diff.B.forward": (1.0e-3, 1e-4),
            "diff.A.r0": (1.2e-3, 1e-4),
            "diff.B.r0": (0.9e-3, 1e-4),
        },
    )
    assert report["targets"] == [_target("addmm_slow"), _target("addmm_fast")]
    assert report["total_energy_j"] == pytest.approx(1.3e-3)
    assert [side["total_energy_j"] for side in report["diff"]["sides"]] == pytest.approx([1.3e-3, 1.0e-3])
    (region,) = report["regions"]
    assert region["verdict"] == "waste" and region["ratio"] == pytest.approx(1.2 / 0.9)
    assert region["a_ops"] == ["mm", "add"] and region["b_ops"] == ["addmm"]
    (finding,) = report["findings"]
    assert finding["kind"] == "diff" and finding["category"] == "API misuse"
    assert finding["excess_energy_j"] == pytest.approx(0.3e-3)
    assert finding["source"]["code"] == "return torch.mm(x, self.w) + self.b"
    assert finding["peer_source"]["code"] == "return torch.addmm(self.b, x, self.w)"
    assert "runs 2 ops (mm, add)" in finding["explanation"] and "one addmm" in finding["explanation"]
    assert finding["energy_provenance"] == "replayed"
    assert report["diff"]["sides"][0]["region_coverage"] == pytest.approx(1.2 / 1.3)
    assert finding["provenance"]["kind"] == "replayed"


def test_replayed_energies_give_a_tradeoff(tmp_path: Path) -> None:
    report = _replay_diff(
        tmp_path,
        {
            "diff.A.forward": (1.3e-3, 1e-4),
            "diff.B.forward": (1.0e-3, 2e-4),
            "diff.A.r0": (1.2e-3, 1e-4),
            "diff.B.r0": (0.9e-3, 2e-4),  # cheaper, but twice as slow
        },
    )
    assert report["regions"][0]["verdict"] == "tradeoff"
    assert report["findings"] == []


# ------------------------------------------------------------------------------------------- knobs


class _MkldnnSensitive(EnergyBackend):
    """Deterministic energy: each call costs twice as much while oneDNN is disabled."""

    name = "fake"

    def info(self) -> BackendInfo:
        return BackendInfo("fake", "estimated", "test: cost depends on torch.backends.mkldnn.enabled", 0.0)

    def open_window(self) -> Any:
        return None

    def close_window(self, window: Any) -> WindowReading:
        return WindowReading(0.0, 0.0)

    def measure(self, key: str, run: Callable[[], None], rounds: int) -> WindowReading:
        run()
        per_call = 1e-3 if torch.backends.mkldnn.enabled else 2e-3
        return WindowReading(per_call * rounds, 1e-4 * rounds)

    def measure_idle(self, duration_s: float) -> WindowReading:
        return WindowReading(0.0, duration_s)


class _Fixed(_MkldnnSensitive):
    def __init__(self, per_call_j: float) -> None:
        self.per_call_j = per_call_j

    def measure(self, key: str, run: Callable[[], None], rounds: int) -> WindowReading:
        run()
        return WindowReading(self.per_call_j * rounds, 1e-4 * rounds)


def _fixed_choice(per_call_j: float) -> BackendChoice:
    return BackendChoice(_Fixed(per_call_j), "test")


def test_knob_diagnosis_finds_mkldnn_disabled() -> None:
    before = torch.backends.mkldnn.enabled
    loaded = load_sides(_target("mkldnn_off"), _target("mkldnn_on"))
    result = diff_workloads(
        loaded,
        DiffOptions(trials=3, op_split=False),
        backend_choice=BackendChoice(_MkldnnSensitive(), "test"),
    )
    assert torch.backends.mkldnn.enabled == before
    report = build_diff_report(result).to_dict()
    assert {"name": "torch.backends.mkldnn.enabled", "a": False, "b": before} in report["diff"]["setting_differences"]
    assert report["findings"]
    for finding in report["findings"]:
        assert finding["category"] == "Misconfiguration"
        knobs = finding["details"]["knobs"]
        assert knobs["closing"]["knob"] == "mkldnn enabled" and knobs["closing"]["value"] == "True"
        assert knobs["tried"][0] == "mkldnn enabled"  # the setting that differs goes first
        assert "intra-op threads" in knobs["tried"]
        skipped = {item["knob"]: item["reason"] for item in knobs["skipped"]}
        assert "CUDA only" in skipped["TF32"] and "CUDA only" in skipped["cuDNN benchmark"]
        assert "mkldnn enabled = True" in finding["explanation"]


# --------------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_diff_and_analyze_peer(tmp_path: Path, run_cli: Any) -> None:
    trace = _trace(
        tmp_path / "t.json",
        {
            "diff.A.forward": (1.3e-3, 1e-4),
            "diff.B.forward": (1.0e-3, 1e-4),
            "diff.A.r0": (1.2e-3, 1e-4),
            "diff.B.r0": (0.9e-3, 1e-4),
        },
    )
    common = ["--backend", "replay", "--trace", str(trace), "--trials", "3", "--no-op-split", "--no-knobs"]
    out = tmp_path / "diff.json"
    result = run_cli("diff", _target("addmm_slow"), _target("addmm_fast"), *common, "--json", str(out))
    assert result.returncode == 1, result.stderr
    report = json.loads(out.read_text())
    assert report["targets"] == [_target("addmm_slow"), _target("addmm_fast")] and len(report["findings"]) == 1
    assert report["findings"][0]["kind"] == "diff"
    assert "waste" in result.stdout and "diff_pairs.py:34" in result.stdout
    peer = run_cli("analyze", _target("addmm_slow"), "--peer", _target("addmm_fast"), *common, "--quiet")
    assert peer.returncode == 1, peer.stderr
    mismatch = run_cli("diff", _target("mkldnn_on"), _target("different_outputs"), "--backend", "estimate")
    assert mismatch.returncode == 2 and "largest relative difference" in mismatch.stderr


def test_settings_round_trip_never_mixes_the_legacy_and_new_matmul_precision_apis() -> None:
    """A precision override and the restore after it leave torch able to read its precision (torch 2.9+ refuses a
    state where a legacy TF32 flag contradicts the precision)."""
    import torch

    from magneton.diff.settings import applied, record_settings

    before = record_settings()
    for name, value in (
        ("torch.get_float32_matmul_precision", "high"),
        ("torch.backends.cuda.matmul.allow_tf32", True),
    ):
        with applied(before.with_value(name, value)):
            assert torch.get_float32_matmul_precision() == "high"
            assert torch.backends.cuda.matmul.allow_tf32 is True
        assert torch.get_float32_matmul_precision() == before.get("torch.get_float32_matmul_precision")
        assert torch.backends.cuda.matmul.allow_tf32 == before.get("torch.backends.cuda.matmul.allow_tf32")


@pytest.mark.parametrize("allocator", ["settled", "process", "steady"])
def test_diff_measures_under_the_allocator_asked_for(allocator: str, allocator_calls: list[str]) -> None:
    # As analyze: glibc's defaults settled by default; as found with "process"; thresholds fixed with "steady".
    loaded = load_sides(_target("mkldnn_on"), _target("mkldnn_on"))
    options = DiffOptions(trials=1, knobs=False, allocator=allocator)  # type: ignore[arg-type]
    diff_workloads(loaded, options, backend_choice=_fixed_choice(1e-6))
    assert set(allocator_calls) == (set() if allocator == "process" else {allocator})
    assert DiffOptions().allocator == "settled"
