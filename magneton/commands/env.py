"""``magneton env``: which sensors work here, and why not."""

from __future__ import annotations

import argparse

from magneton.commands import EXIT_OK

NAME = "env"
HELP = "show Python, torch, devices and which energy backends work here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="device to probe backends for (default: cuda if available)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from magneton.envinfo import render_env

    render_env(Console(), args.device)
    return EXIT_OK
