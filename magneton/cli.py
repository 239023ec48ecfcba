"""The ``magneton`` command: a thin layer over the Python API.

Each subcommand is one module in ``magneton.commands``, found automatically:
a module defines ``NAME``, ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)``
and ``run(args) -> int``. Command modules import nothing heavy at module level,
so ``magneton --help`` stays instant; torch is imported inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from magneton import __version__
from magneton.commands import EXIT_ERROR, EXIT_INTERRUPTED


def command_modules() -> list[ModuleType]:
    """Every subcommand module, in name order."""
    import magneton.commands as package

    modules = [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    ]
    return sorted((m for m in modules if hasattr(m, "NAME")), key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="magneton",
        description="Energy profiler for PyTorch: finds operators that spend joules without making "
        "the result better or faster.",
    )
    parser.add_argument("--version", action="version", version=f"magneton {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in command_modules():
        sub = commands.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", None))
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        from magneton.errors import MagnetonError

        try:
            return int(args.run(args))
        except MagnetonError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_ERROR
    except KeyboardInterrupt:  # Ctrl-C anywhere, importing torch or the user's file included
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry() -> NoReturn:
    """The console script: run, flush, and leave without tearing the interpreter down.

    Everything the command writes (reports, traces) is written and closed by then; freeing torch's
    and the user's objects one by one at exit only costs the user time.
    """
    try:
        code = main()
    except SystemExit as exit_:  # argparse's --help and usage errors
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else EXIT_ERROR)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    try:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: nothing more can be said
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
