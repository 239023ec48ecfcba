"""Errors in the user's program are blamed on the user's file:line; Magneton's own bugs are internal errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from torch import nn

from magneton.atomic import write_json_atomic
from magneton.commands.analyze import check_json_path, report_file_name
from magneton.errors import InternalError, MagnetonError, WorkloadError
from magneton.pipeline import AnalyzeOptions, analyze_batch, analyze_target, analyze_workload
from magneton.workload import Workload, validate_workload

FAST = AnalyzeOptions.from_flat(backend="estimate", trials=1, min_window_s=0.002, idle_s=0.01)

SHAPE_MISMATCH = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)  # raises


def workload():
    return Net().eval(), (torch.randn(2, 5),)
"""


def test_forward_that_raises_is_a_workload_error_at_the_users_line(write_target, marker_line) -> None:
    target = write_target(SHAPE_MISMATCH)
    with pytest.raises(WorkloadError) as info:
        analyze_target(target, FAST)
    message = str(info.value)
    path = target.rsplit(":", 1)[0]
    assert message.startswith(f"target {target!r}: running the workload raised RuntimeError at {path}:")
    assert info.value.location == (path, marker_line(path, "raises"))
    assert "mat1 and mat2 shapes cannot be multiplied" in message
    assert "internal error" not in message
    assert len(message.splitlines()) <= 4  # no pages of torch traceback


def test_user_code_asking_for_cuda_gets_the_cuda_hint(write_target) -> None:
    if torch.cuda.is_available():
        pytest.skip("needs a torch without CUDA")
    target = write_target(
        """
        import torch

        def f(x):
            return x.cuda() * 2

        def workload():
            return f, (torch.randn(3),)
        """
    )
    with pytest.raises(WorkloadError, match="hint: CUDA was requested but this torch build or machine has no CUDA"):
        analyze_target(target, FAST)


def test_device_cuda_without_cuda_is_a_workload_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("needs a torch without CUDA")
    workload = Workload(nn.Linear(2, 2), (torch.randn(1, 2),))
    options = AnalyzeOptions.from_flat(backend="estimate", device="cuda", trials=1, min_window_s=0.002, idle_s=0.01)
    with pytest.raises(WorkloadError, match=r"target 'lin': --device cuda requested, but this torch build has no CUDA"):
        analyze_workload(workload, "lin", options)


def test_meta_inputs_and_parameters_must_be_real() -> None:
    with pytest.raises(WorkloadError, match=r"input args\[0\] is a meta tensor; inputs must be real tensors"):
        validate_workload("t", (nn.Linear(2, 2), (torch.empty(1, 2, device="meta"),)))
    with torch.device("meta"):
        model = nn.Linear(2, 2)
    with pytest.raises(WorkloadError, match="the model's weight is on the meta device.*load real weights"):
        validate_workload("t", (model, (torch.randn(1, 2),)))


def test_dict_in_second_place_gets_the_kwargs_hint() -> None:
    with pytest.raises(WorkloadError, match=r"return \(model, \(\), \{\.\.\.\}\)"):
        validate_workload("t", (nn.Linear(2, 2), {"input": torch.randn(1, 2)}))


def test_trace_that_does_not_match_names_the_target(tmp_path: Path, write_target) -> None:
    trace = tmp_path / "other.json"
    trace.write_text(
        '{"schema": "magneton.trace/1", "backend": {"name": "estimate", "provenance": "estimated", '
        '"sensor": "x"}, "idle_power_w": 1.0, "measurements": {"aten.other": [{"energy_j": 1, "time_s": 1}]}}'
    )
    target = write_target(SHAPE_MISMATCH.replace("torch.randn(2, 5)", "torch.randn(2, 4)"))
    options = AnalyzeOptions.from_flat(backend="replay", trace_path=trace, trials=1)
    (item,) = analyze_batch([target], options)
    assert item.error is not None
    assert item.error.startswith(f"target {target!r}: ")
    assert "recorded for a different workload" in item.error


def test_magneton_bug_is_an_internal_error_with_traceback(write_target, monkeypatch) -> None:
    import magneton.measure.energy_pass as energy_pass
    from magneton.measure import stats

    # A bug of ours, simulated: Magneton calls one of its own functions with the wrong arguments.
    monkeypatch.setattr(energy_pass, "run_energy_pass", stats.summarize)
    target = write_target(SHAPE_MISMATCH.replace("torch.randn(2, 5)", "torch.randn(2, 4)"))
    with pytest.raises(InternalError) as info:
        analyze_target(target, FAST)
    assert str(info.value).startswith(f"target {target!r}: internal error in Magneton, not in your program (TypeError")
    assert "Please report this bug" in str(info.value)
    assert "magneton/pipeline.py" in info.value.traceback_text  # the full traceback, for --debug
    (item,) = analyze_batch([target], FAST)
    assert item.error == str(info.value)
    assert item.traceback and "TypeError" in item.traceback


def test_internal_error_traceback_only_with_debug(write_target, run_cli, tmp_path: Path) -> None:
    # A Magneton bug, simulated: the energy pass module is replaced by one that raises.
    shim = tmp_path / "sitecustomize.py"
    shim.write_text(
        "import magneton.measure.energy_pass as p, magneton.measure.stats as s\np.run_energy_pass = s.summarize\n"
    )
    target = write_target(SHAPE_MISMATCH.replace("torch.randn(2, 5)", "torch.randn(2, 4)"))
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{Path.cwd()}{os.pathsep}{env_path}"
    try:
        plain = run_cli("analyze", target, "--backend", "estimate", "--trials", "1", "--quiet")
        debug = run_cli("analyze", target, "--backend", "estimate", "--trials", "1", "--quiet", "--debug")
    finally:
        os.environ["PYTHONPATH"] = env_path
    for result in (plain, debug):
        assert result.returncode == 2
        assert "internal error in Magneton" in result.stderr
    assert "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr


def test_json_path_is_checked_before_the_analysis(tmp_path: Path, run_cli, write_target) -> None:
    report_file = tmp_path / "r.json"
    report_file.write_text("{}")
    assert "is a file" in (check_json_path(report_file, batch=True) or "")
    assert "is a folder" in (check_json_path(tmp_path, batch=False) or "")
    assert check_json_path(tmp_path / "new" / "r.json", batch=False) is None
    assert check_json_path(tmp_path / "reports", batch=True) is None
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        assert "permission denied" in (check_json_path(locked / "r.json", batch=False) or "")
    finally:
        locked.chmod(0o700)
    # The CLI refuses at once: the workload (which would raise) is never even loaded.
    target = write_target("raise SystemExit('never imported')\n")
    result = run_cli("analyze", target, target, "--json", str(report_file))
    assert result.returncode == 2
    assert "is a file" in result.stderr and "never imported" not in result.stderr


def test_trace_without_replay_backend_is_an_error(run_cli, tmp_path: Path) -> None:
    result = run_cli("analyze", "x.py:f", "--trace", str(tmp_path / "t.json"))
    assert result.returncode == 2
    assert "--trace is read only by --backend replay" in result.stderr


def test_reports_get_the_users_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("target", "name"),
    [("./a.py:workload", "a.py_workload.json"), ("../m/b.py:wl", "m_b.py_wl.json"), ("pkg.mod:fn", "pkg.mod_fn.json")],
)
def test_batch_report_names_are_not_hidden_files(target: str, name: str) -> None:
    assert report_file_name(target) == name


def test_sigint_exits_130_during_the_users_import(run_cli, write_target) -> None:
    target = write_target("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n")
    result = run_cli("analyze", target, "--backend", "estimate")
    assert result.returncode == 130, result.stderr
    assert "interrupted" in result.stderr


def test_sigint_exits_130_during_the_analysis(run_cli, write_target) -> None:
    target = write_target(
        """
        import os, signal, torch

        def f(x):
            os.kill(os.getpid(), signal.SIGINT)
            return x * 2

        def workload():
            return f, (torch.randn(3),)
        """
    )
    result = run_cli("analyze", target, "--backend", "estimate", "--json", "out.json")
    assert result.returncode == 130, result.stderr
    assert "no partial report was written" in result.stderr


def test_capture_and_backend_errors_name_their_target(monkeypatch, write_target) -> None:
    import magneton.capture as capture_package
    from magneton.errors import CaptureError

    def refuse(workload):
        raise CaptureError("no capture method worked")

    monkeypatch.setattr(capture_package, "capture", refuse)
    target = write_target(SHAPE_MISMATCH.replace("torch.randn(2, 5)", "torch.randn(2, 4)"))
    with pytest.raises(CaptureError) as info:
        analyze_target(target, FAST)
    assert str(info.value) == f"target {target!r}: no capture method worked"
    assert isinstance(info.value, MagnetonError)
