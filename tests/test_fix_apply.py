"""`magneton fix`: diffs, atomic writes that keep permissions, encodings and line endings, idempotence."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from magneton.fix.apply import FixError, fix_text, write_fixed
from magneton.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
FIXERS = [rule for rule in load_rules().rules if rule.fixable]
SOURCE = (
    "import torch\n\n\ndef f(x, mask):\n"
    "    n = (mask != 0).sum()\n"
    "    top = torch.sort(x, descending=True).values[..., :3]\n"
    "    return torch.log(torch.softmax(x, dim=-1)), n, top\n"
)


def _fix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magneton", "fix", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_diff_then_apply_then_noop(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(SOURCE, encoding="utf-8")
    os.chmod(path, 0o751)
    shown = _fix(str(path))
    assert shown.returncode == 1
    assert "-    n = (mask != 0).sum()" in shown.stdout and "+    n = torch.count_nonzero(mask)" in shown.stdout
    assert path.read_text(encoding="utf-8") == SOURCE  # a diff only
    applied = _fix(str(path), "--apply")
    assert applied.returncode == 1, applied.stderr
    text = path.read_text(encoding="utf-8")
    assert "torch.count_nonzero(mask)" in text and "torch.topk(x, 3, dim=-1).values" in text
    assert "torch.log_softmax(x, dim=-1)" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o751
    again = _fix(str(path), "--apply")
    assert again.returncode == 0 and again.stdout == ""
    assert path.read_text(encoding="utf-8") == text
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rule_selection(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    path.write_text(SOURCE, encoding="utf-8")
    run = _fix(str(path), "--rule", "MAG117", "--apply")
    assert run.returncode == 1
    text = path.read_text(encoding="utf-8")
    assert "count_nonzero" in text and "torch.sort" in text


def test_crlf_and_encoding_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "latin.py"
    original = "# -*- coding: latin-1 -*-\r\nimport torch\r\nname = 'café'\r\nn = (x != 0).sum()\r\n"
    path.write_bytes(original.encode("latin-1"))
    result = fix_text(original, str(path), FIXERS)
    assert result.changed
    write_fixed(path, original, result.fixed)
    data = path.read_bytes()
    assert data.count(b"\r\n") == 4 and b"\n" not in data.replace(b"\r\n", b"")
    assert "café".encode("latin-1") in data and b"torch.count_nonzero(x)" in data


def test_added_import_follows_docstring_and_future(tmp_path: Path) -> None:
    code = (
        '"""Doc."""\nfrom __future__ import annotations\n\n'
        "from torch import sort\nv = sort(x, descending=True).values[..., :2]\n"
    )
    fixed = fix_text(code, "m.py", FIXERS).fixed
    assert fixed.startswith('"""Doc."""\nfrom __future__ import annotations\nimport torch\n')
    assert "torch.topk(x, 2, dim=-1).values" in fixed
    compile(fixed, "m.py", "exec")


def test_refuses_to_write_code_that_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(FixError, match="does not parse"):
        write_fixed(path, "x = 1\n", "def broken(:\n")
    assert path.read_text(encoding="utf-8") == "x = 1\n"


def test_refuses_when_the_file_changed_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("x = 2\n", encoding="utf-8")
    with pytest.raises(FixError, match="changed"):
        write_fixed(path, "x = 1\n", "x = 3\n")


def test_suppressed_hits_are_not_fixed() -> None:
    code = "import torch\nn = (x != 0).sum()  # magneton: ignore[MAG117]\n"
    assert not fix_text(code, "m.py", FIXERS).changed


def test_unparsable_file_is_an_error_and_the_batch_goes_on(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import torch\ndef f(:\n", encoding="utf-8")
    (tmp_path / "good.py").write_text("import torch\nn = (x != 0).sum()\n", encoding="utf-8")
    run = _fix(str(tmp_path))
    assert run.returncode == 2
    assert "bad.py" in run.stderr and "count_nonzero" in run.stdout


@pytest.mark.parametrize("rule", FIXERS, ids=[rule.id for rule in FIXERS])
def test_every_fix_is_idempotent_and_parses(rule: type) -> None:
    for example in rule.invalid_examples():
        from magneton.rules.testing import example_code

        first = fix_text(example_code(example.code), "m.py", [rule])
        assert first.error is None
        compile(first.fixed, "m.py", "exec")
        second = fix_text(first.fixed, "m.py", [rule])
        assert not second.changed, second.diff()
