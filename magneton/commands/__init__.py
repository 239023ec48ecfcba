"""Subcommands of ``magneton``, one module each (see ``magneton.cli``), and what they share."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from magneton.report.model import Report

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_allocator_argument(parser: argparse.ArgumentParser) -> None:
    """``--allocator``, the same for every command that measures (analyze, diff, corpus validate)."""
    parser.add_argument(
        "--allocator",
        choices=("settled", "process", "steady"),
        default="settled",
        help="settled (default): glibc malloc's own defaults, its adaptive mmap threshold taken to its ceiling as "
        "in a long-running process, so two runs measure the same state; process: the process as found (a fresh "
        "process's allocator state is a lottery); steady: fix glibc malloc's mmap and trim thresholds",
    )


def exit_code(reports: Sequence[Report], errors: int) -> int:
    """DESIGN.md: 0 nothing found, 1 findings, 2 errors."""
    if errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if any(report.findings for report in reports) else EXIT_OK
