"""Writing files so that readers never see a half-written one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    """The process umask; Linux exposes it read-only, elsewhere it is set and put back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(
    path: Path, text: str, *, encoding: str = "utf-8", newline: str | None = None, mode: int | None = None
) -> None:
    """Write to a temporary file beside ``path`` and rename it over; on any error the old file stays.

    The file gets ``mode`` (a fixed file keeps its own), else the permissions any new file of the user
    gets (0666 less the umask), not the private 0600 of a temporary file. ``encoding`` and ``newline``
    are ``open()``'s (``newline=""`` writes line endings as they are in ``text``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask() if mode is None else mode)
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
