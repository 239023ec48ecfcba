"""What ``magneton analyze`` and ``magneton env`` print: foreign text kept verbatim, --quiet, alignment."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_MLP = Path(__file__).resolve().parent / "workloads" / "tiny_mlp.py"
FAST = ["--backend", "estimate", "--trials", "1", "--min-window-s", "0.002", "--no-overhead", "--no-allocator-check"]


def test_markup_in_an_error_message_is_printed_and_the_batch_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from magneton.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "160")
    (tmp_path / "raises.py").write_text(
        "def workload():\n    raise RuntimeError('no weights for self.layers[i] [/bold] [red]x[/red]')\n"
    )
    (tmp_path / "brackets.py").write_text(
        "import torch\n"
        "from torch import nn\n\n\n"
        "class Model(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layers = nn.ModuleList([nn.Linear(16, 16)])\n\n"
        "    def forward(self, x):\n"
        "        return torch.relu(self.layers[0](x)[:, :8])  # [/bold] stays\n\n\n"
        "def workload():\n"
        "    return Model().eval(), (torch.randn(4, 16),)\n"
    )
    code = main(["analyze", "raises.py:workload", "brackets.py:workload", *FAST, "--json", "out"])
    captured = capsys.readouterr()
    assert code == 2
    assert "no weights for self.layers[i] [/bold] [red]x[/red]" in " ".join(captured.err.split())
    assert "torch.relu(self.layers[0](x)[:, :8])  # [/bold] stays" in captured.out  # code column, by line
    assert captured.out.splitlines()[-1] == "analyzed 2 targets: 1 ok, 1 error, 0 findings"
    assert (tmp_path / "out").is_dir() and len(list((tmp_path / "out").iterdir())) == 1


def test_quiet_keeps_one_line_naming_backend_and_provenance(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from magneton.cli import main

    monkeypatch.setenv("COLUMNS", "300")
    code = main(
        [
            "analyze",
            f"{TINY_MLP}:workload",
            "--trials",
            "1",
            "--min-window-s",
            "0.002",
            "--quiet",
            "--no-overhead",
            "--no-allocator-check",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(out) == 2, out
    assert out[0].startswith(f"{TINY_MLP}:workload: ") and " per call, backend " in out[0]
    if "backend estimate" in out[0]:  # auto found no readable sensor: the fallback must show
        assert "ESTIMATED; auto: no readable sensor, estimate is the fallback" in out[0]
    else:
        assert "MEASURED" in out[0]
    assert out[1] == "analyzed 1 target: 1 ok, 0 errors, 0 findings"


def test_env_aligns_long_constant_names(run_cli) -> None:
    result = run_cli("env")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("constants"))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(" " * 20):
            break
        block.append(line)
    keys = [line for line in block if " = " in line]
    assert any("watts_per_core_origin" in line for line in keys)
    assert len({line.index(" = ") for line in keys}) == 1, keys  # one column of "=", whatever the key length
    assert "formula       energy_j = process_cpu_time_s * watts_per_core" in result.stdout
