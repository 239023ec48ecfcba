"""Progress: the energy pass tells an observer how far it got; the CLI draws it on a terminal's stderr only."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from magneton.capture import capture
from magneton.cli import build_parser
from magneton.commands.analyze import ProgressView, progress_view
from magneton.measure.energy_pass import run_energy_pass
from magneton.measure.options import PassOptions
from magneton.progress import ProgressEvent
from magneton.workload import Workload

TINY_MLP = Path(__file__).resolve().parent / "workloads" / "tiny_mlp.py"  # tests/workloads/: parents[2] is the repo


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b(torch.relu(self.a(x))))  # two linears of one signature, two relus of one


def test_energy_pass_reports_each_operator_of_each_trial(fake_backend_cls) -> None:
    workload = Workload(Block().eval(), (torch.randn(4, 8),))
    graph = capture(workload)
    events: list[ProgressEvent] = []
    options = PassOptions(trials=2, warmup_calls=0, min_window_s=0.001, idle_s=0.0)
    run_energy_pass(graph, workload, fake_backend_cls(), options, progress=events.append)
    signatures = len({node.signature for node in graph.nodes if not node.zero_cost})
    assert signatures == 2
    assert events[0].stage == "idle"
    assert [(e.trial, e.done, e.total) for e in events[1:]] == [(t, d, 2) for t in (1, 2) for d in range(3)]
    assert all(e.trials == 2 for e in events[1:])


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_only_for_a_terminal_and_never_with_quiet() -> None:
    parse = build_parser().parse_args
    assert isinstance(progress_view(parse(["analyze", "t.py:w"]), _Stream(tty=True)), ProgressView)
    assert progress_view(parse(["analyze", "t.py:w", "--quiet"]), _Stream(tty=True)) is None
    assert progress_view(parse(["analyze", "t.py:w"]), _Stream(tty=False)) is None


def test_view_draws_trial_and_operator(tmp_path: Path) -> None:
    from rich.console import Console

    out = io.StringIO()
    view = ProgressView(Console(file=out, force_terminal=True, width=160))
    view(ProgressEvent("capture", target="[red]x.py:w"))  # user text is escaped, not markup
    view(ProgressEvent("trial", target="[red]x.py:w", trial=2, trials=3, done=1, total=4))
    view.stop()
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())
    assert "[red]x.py:w" in plain and "trial 2/3: operator 1/4" in plain and "5/12" in plain


def test_json_to_stdout_with_progress_on_a_terminal(tmp_path: Path) -> None:
    """stdout (a pipe) holds the JSON and nothing else; progress and the terminal report go to stderr (a tty)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(TINY_MLP.parents[2])}
    env.pop("MAGNETON_CPU_WATTS_PER_CORE", None)
    args = ["analyze", f"{TINY_MLP}:workload", "--backend=estimate", "--trials=2", "--idle-s=0.01", "--json", "-"]
    # Exit 0 means no finding: the measured detectors, whose verdicts depend on the machine's load, stay off.
    args += ["--no-overhead", "--no-allocator-check", "--no-expected"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "magneton", *args], stdout=subprocess.PIPE, stderr=follower, env=env, cwd=tmp_path
    )
    os.close(follower)
    stderr = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        stderr += chunk
    stdout = proc.stdout.read() if proc.stdout else b""
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    report = json.loads(stdout)  # the whole of stdout is one JSON document
    assert report["schema"] == "magneton.report/1" and report["nodes"]
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", stderr.decode(errors="replace"))
    assert "capturing the operator graph" in plain and "trial 2/2" in plain
    assert "analyzed 1 target: 1 ok" in plain


def test_json_to_stdout_takes_one_target(run_cli, tmp_path: Path) -> None:
    done = run_cli("analyze", f"{TINY_MLP}:workload", f"{TINY_MLP}:workload", "--json=-", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "--json - takes a single target" in done.stderr
