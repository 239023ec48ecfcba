"""Every subcommand's --help renders (a stray % in a help text breaks argparse only when help is shown)."""

from __future__ import annotations

import pytest

from magneton.cli import build_parser, command_modules


@pytest.mark.parametrize("name", [module.NAME for module in command_modules()])
def test_help_renders(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: magneton {name}" in out
    assert "option_strings" not in out  # what argparse prints when a help text's % swallows its own fields
