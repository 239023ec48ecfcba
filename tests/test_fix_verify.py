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
