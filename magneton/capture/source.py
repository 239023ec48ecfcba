"""Mapping an operator back to the innermost *user* source frame.

Frames inside torch (and Magneton, and the standard library) are skipped;
frames inside third-party libraries such as transformers are kept, because
that is where the waste often is.
"""

from __future__ import annotations

import linecache
import os
import re
import sysconfig
from functools import lru_cache

from magneton.graph import SourceLocation

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>.+)$')


@lru_cache(maxsize=1)
def _roots() -> tuple[tuple[str, ...], str, str | None]:
    import torch

    import magneton

    package = os.path.realpath(os.path.dirname(magneton.__file__)) + os.sep
    skipped = (os.path.realpath(os.path.dirname(torch.__file__)) + os.sep, package)
    stdlib = sysconfig.get_paths().get("stdlib")
    return skipped, package + "examples" + os.sep, os.path.realpath(stdlib) + os.sep if stdlib else None


def is_user_file(path: str) -> bool:
    """True for the user's code and third-party libraries; False for torch, Magneton and the stdlib."""
    if path.startswith("<"):  # <eval_with_key>, <string>: generated code
        return False
    real = os.path.realpath(path)
    skipped, bundled_examples, stdlib = _roots()
    if real.startswith(bundled_examples):  # Magneton's example workloads are user code
        return True
    if real.startswith(skipped):
        return False
    in_site_packages = any(part in ("site-packages", "dist-packages") for part in real.split(os.sep))
    return not (stdlib and real.startswith(stdlib) and not in_site_packages)


def parse_stack_trace(stack_trace: str) -> list[SourceLocation]:
    """Frames of an fx ``stack_trace`` string, outermost first."""
    frames: list[SourceLocation] = []
    lines = stack_trace.splitlines()
    for i, text in enumerate(lines):
        match = _FRAME.match(text)
        if not match:
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.match(lines[i + 1]) else ""
        file, line = match["file"], int(match["line"])
        if not code:
            code = linecache.getline(file, line).strip()
        frames.append(SourceLocation(file, line, match["function"].strip(), code))
    return frames


def innermost_user_frame(stack_trace: str | None) -> SourceLocation | None:
    if not stack_trace:
        return None
    for frame in reversed(parse_stack_trace(stack_trace)):
        if is_user_file(frame.file):
            return frame
    return None
