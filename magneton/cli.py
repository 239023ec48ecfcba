"""The ``magneton`` command: a thin layer over the Python API.

Each subcommand is one module in ``magneton.commands``, found automatically:
a module defines ``NAME``, ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)``
and ``run(args) -> int``. Command modules import nothing heavy at module level,
so ``magneton --help`` stays instant; torch is imported inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from magneton import __version__
from magneton.commands import EXIT_ERROR


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
    args = build_parser().parse_args(argv)
    from magneton.errors import MagnetonError

    try:
        return int(args.run(args))
    except MagnetonError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
