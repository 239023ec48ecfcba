"""Shared fixtures for the ``magneton analyze`` backbone tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
WORKLOADS_DIR = TESTS_DIR / "workloads"
REPO_ROOT = TESTS_DIR.parent
SCHEMA_PATH = REPO_ROOT / "magneton" / "schemas" / "report-1.schema.json"
ENV_WATTS = "MAGNETON_CPU_WATTS_PER_CORE"


@pytest.fixture(autouse=True)
def _no_watts_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide the per-core power themselves; a developer's environment must not leak in."""
    monkeypatch.delenv(ENV_WATTS, raising=False)


@pytest.fixture(autouse=True, scope="session")
def _expected_energy_off_and_private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Analyses in tests skip the expected-energy stage unless a test asks for it (it would run a
    calibration sweep), and no test reads or writes the user's calibration cache."""
    saved = {key: os.environ.get(key) for key in ("MAGNETON_EXPECTED", "MAGNETON_CACHE_DIR")}
    os.environ["MAGNETON_EXPECTED"] = "0"
    os.environ["MAGNETON_CACHE_DIR"] = str(tmp_path_factory.mktemp("magneton-cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def write_target(tmp_path: Path) -> Callable[..., str]:
    """Write a workload file into tmp_path and return the ``file.py:function`` target for it."""

    def write(source: str, function: str = "workload", name: str = "target_mod.py") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return f"{path}:{function}"

    return write


@pytest.fixture
def fast_analyze_options():
    """The cheapest settings that still run every stage of the energy pass."""
    from magneton.pipeline import AnalyzeOptions

    # The measured detectors (overhead, allocator knob) have their own tests; elsewhere their findings would
    # depend on the machine's load.
    return AnalyzeOptions.from_flat(
        backend="estimate", trials=2, min_window_s=0.002, idle_s=0.01, overhead=False, allocator_check=False
    )


@pytest.fixture(scope="session")
def report_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def line_of(path: str | Path, marker: str) -> int:
    """1-based line number of the only line of ``path`` that ends with the comment ``# <marker>``."""
    lines = [
        i for i, text in enumerate(Path(path).read_text().splitlines(), 1) if text.rstrip().endswith(f"# {marker}")
    ]
    assert len(lines) == 1, f"marker {marker!r} found on lines {lines} of {path}"
    return lines[0]


@pytest.fixture
def marker_line() -> Callable[[str | Path, str], int]:
    return line_of


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_WATTS}
    env["COLUMNS"] = "240"  # rich wraps at 80 columns when not on a terminal; keep lines whole
    env["NO_COLOR"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    # The subprocess runs this checkout's magneton even from another cwd (an editable install may point elsewhere).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m magneton ARGS`` in a subprocess, as a user would."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "magneton", *args],
            cwd=cwd,
            env=_cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=cwd,
            env=_cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def fake_energy_per_call(key: str) -> float:
    """Deterministic joules per call for a measurement key: whole numbers, so k * rounds / rounds == k."""
    import zlib

    from magneton.measure.energy_pass import FORWARD_KEY

    if key == FORWARD_KEY:
        return 1000.0
    return float(1 + zlib.crc32(key.encode()) % 50)


@pytest.fixture
def allocator_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which allocator state a measurement put the process in: test doubles record it instead of changing it."""
    from magneton.measure import allocator

    calls: list[str] = []
    monkeypatch.setattr(allocator, "steady_allocator", lambda: calls.append("steady") or "fixed (test double)")
    monkeypatch.setattr(allocator, "settle_allocator", lambda: calls.append("settled") or "settled (test double)")
    return calls


@pytest.fixture
def energy_per_call():
    """The fake backend's joules per call for a key (``__forward__``: 1000 J)."""
    return fake_energy_per_call


@pytest.fixture
def fake_backend_cls():
    """An EnergyBackend whose window for ``key`` holds exactly ``energy_per_call(key) * rounds`` joules.

    It runs what it is asked to measure (so replays really happen) and records every (key, rounds).
    """
    from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading

    class FakeBackend(EnergyBackend):
        name = "fake"
        contention_sensitive = False  # deterministic readings: the machine's load must not change what is run
        TIME_PER_CALL_S = 2.0**-12  # binary fraction: t * rounds / rounds is exact
        IDLE = WindowReading(energy_j=0.5, time_s=0.25)

        def __init__(self, energy_per_call=fake_energy_per_call, min_window_s: float = 0.5) -> None:
            self.energy_per_call = energy_per_call
            self.min_window_s = min_window_s
            self.measured: list[tuple[str, int]] = []
            self.idle_requests: list[float] = []
            self.closed = False

        def info(self) -> BackendInfo:
            return BackendInfo(
                name="replay",
                provenance="estimated",
                sensor="deterministic test double",
                min_window_s=self.min_window_s,
            )

        def open_window(self):
            raise AssertionError("the energy pass must measure through measure()")

        def close_window(self, window):
            raise AssertionError("the energy pass must measure through measure()")

        def measure(self, key, run, rounds):
            run()
            self.measured.append((key, rounds))
            return WindowReading(self.energy_per_call(key) * rounds, self.TIME_PER_CALL_S * rounds)

        def measure_timed(self, key, call, rounds, min_window_s, max_rounds, calls_per_round=1):
            """Runs ``rounds`` calls, then doubles until the fake clock passes the minimum window."""
            done, batch = 0, max(1, min(rounds, max_rounds))
            while True:
                for _ in range(batch):
                    call()
                done += batch
                if done * calls_per_round * self.TIME_PER_CALL_S >= min_window_s or done >= max_rounds:
                    break
                batch = min(done, max_rounds - done)
            calls = done * calls_per_round
            self.measured.append((key, calls))
            return WindowReading(self.energy_per_call(key) * calls, self.TIME_PER_CALL_S * calls), done

        def measure_idle(self, duration_s):
            self.idle_requests.append(duration_s)
            return self.IDLE

        def close(self) -> None:
            self.closed = True

    return FakeBackend
