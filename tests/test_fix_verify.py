"""`magneton fix --verify`: the fixed workload runs on the same inputs; outputs are compared, energy measured."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from magneton.fix.apply import fix_file
from magneton.fix.verify import load_fixed, output_difference, verify_fix
from magneton.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "fix_verify"


@pytest.fixture
def workload_file(tmp_path: Path) -> Path:
    path = tmp_path / "gelu_workload.py"
    shutil.copy(DATA / "gelu_workload.py", path)
    return path


def test_verify_measures_a_saving(workload_file: Path) -> None:
    fixed = fix_file(str(workload_file), [r for r in load_rules().rules if r.fixable])
    assert fixed.changed and 'gelu(h, approximate="tanh")' in fixed.fixed
    result = verify_fix(f"{workload_file}:workload", workload_file, fixed.fixed, backend="estimate", trials=5)
    assert result.outputs_match and result.max_relative_difference < 1e-4
    # Eight elementwise passes become one; the fused kernel is far cheaper even on a busy machine.
    assert result.saving_j.median > 0 and result.saving_fraction > 0
    assert result.provenance == "estimated"
    assert result.to_json()["verified"] == result.verified
    assert workload_file.read_text(encoding="utf-8") == fixed.original  # verification never writes


def test_different_outputs_are_never_verified(workload_file: Path) -> None:
    original = workload_file.read_text(encoding="utf-8")
    wrong = original.replace("return 0.5 * h", "return 0.6 * h")  # 20% off: a "fix" that changes results
    result = verify_fix(f"{workload_file}:workload", workload_file, wrong, backend="estimate", trials=1)
    assert not result.outputs_match and not result.verified
    assert "NOT verified" in result.verdict()


def test_same_weights_for_both_sides(workload_file: Path) -> None:
    # The factory builds a randomly initialised Linear without a seed: verification must still compare like with like.
    target = f"{workload_file}:workload"
    fixed = load_fixed(target, workload_file, workload_file.read_text(encoding="utf-8"))
    from magneton.workload import load_target

    original = load_target(target)
    from magneton.fix.verify import _share_weights

    _share_weights(original.fn, fixed.fn)
    a, b = original.fn(*original.args), fixed.fn(*original.args)
    assert output_difference(a, b) == (0.0, 0.0)


def test_cli_verify_and_apply(workload_file: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "magneton", "fix", f"{workload_file}:workload", "--verify", "--apply", "--trials", "5",
         "--backend", "estimate"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "saving" in run.stderr and "largest output difference" in run.stderr and "ESTIMATED" in run.stderr
    if "not verified" in run.stderr:  # a saving inside the machine's noise is reported, never applied
        assert "not applied" in run.stderr and "gelu(h" not in workload_file.read_text(encoding="utf-8")
    else:
        assert "verified: outputs match and the saving's interval is above zero" in run.stderr
        assert "gelu(h" in workload_file.read_text(encoding="utf-8")


def test_verify_needs_a_target(workload_file: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "magneton", "fix", str(workload_file), "--verify"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and "needs a TARGET" in run.stderr


class _CountingMeter:
    """A meter whose joules are the cost units the calls inside a window add up: deterministic, no sensor."""

    contention_sensitive = False

    def __init__(self, spent: list[float]) -> None:
        self.spent = spent

    def measure(self, key: str, fn: object, calls: int) -> object:
        from types import SimpleNamespace

        before = self.spent[0]
        fn()  # type: ignore[operator]
        return SimpleNamespace(energy_j=self.spent[0] - before)


def _switching_sides(spent: list[float]) -> dict[str, object]:
    """Side a costs 10 a call, b 5; the first b call after a pays 8 more (the heap a's frees gave back)."""
    last = [""]

    def call(side: str) -> None:
        spent[0] += 10 if side == "a" else 5
        if side == "b" and last[0] == "a":
            spent[0] += 8
        last[0] = side

    return {"a": lambda: call("a"), "b": lambda: call("b")}


@pytest.mark.parametrize("warmup", [0, 2])
def test_a_window_does_not_pay_for_the_state_the_other_side_left(monkeypatch: pytest.MonkeyPatch, warmup: int) -> None:
    from magneton.fix import verify

    monkeypatch.setattr(verify, "WARMUP_CALLS_PER_WINDOW", warmup)
    spent = [0.0]
    pairs = verify._PairedTrials(_CountingMeter(spent), _switching_sides(spent), {"a": 4, "b": 4})  # type: ignore[arg-type]
    for trial in range(6):
        pairs.measure(("a", "b") if trial % 2 == 0 else ("b", "a"))
    assert pairs.samples["a"] == [10.0] * 6
    if warmup:
        assert pairs.samples["b"] == [5.0] * 6  # what the fixed code costs when it runs on its own
    else:
        assert pairs.samples["b"] == [7.0, 5.0] * 3  # the artefact: every other trial charged 8 / 4 calls more


def test_verification_reports_contention_and_faults(workload_file: Path) -> None:
    original = workload_file.read_text(encoding="utf-8")
    result = verify_fix(f"{workload_file}:workload", workload_file, original, backend="estimate", trials=2)
    data = result.to_json()
    assert data["contended_trials"] >= 0 and data["remeasured_trials"] >= 0
    assert data["remeasured_trials"] <= 2
    assert data["minor_faults_per_call"] is None or len(data["minor_faults_per_call"]) == 2
