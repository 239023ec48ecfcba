"""Plain-text formatting every view shares (terminal, diff, HTML): joules and seconds with SI prefixes, paths.

Free of rich, so the HTML report can use it without the terminal's imports.
"""

from __future__ import annotations

import os


def format_energy(joules: float) -> str:
    """Joules with an SI prefix that keeps three significant digits."""
    magnitude = abs(joules)
    for factor, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")):
        if magnitude >= factor:
            return f"{joules / factor:.3g} {unit}"
    return "0 J" if joules == 0 else f"{joules:.3g} J"


def format_time(seconds: float) -> str:
    magnitude = abs(seconds)
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if magnitude >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return "0 s" if seconds == 0 else f"{seconds * 1e9:.3g} ns"


def short_path(path: str) -> str:
    """Library files by their import path (transformers/...), the user's relative to the cwd."""
    for marker in (f"site-packages{os.sep}", f"dist-packages{os.sep}"):
        if marker in path:
            return path.split(marker, 1)[1]
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


__all__ = ["format_energy", "format_time", "short_path"]
