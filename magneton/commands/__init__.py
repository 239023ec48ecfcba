"""Subcommands of ``magneton``, one module each (see ``magneton.cli``), and what they share."""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


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
