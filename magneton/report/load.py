"""Reading ``magneton.report/1`` files: today's, and older ones that lack fields added since."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from magneton.errors import ReportError
from magneton.provenance import provenance_of_backend
from magneton.report.model import SCHEMA, Report

_DECODER = msgspec.json.Decoder(Report)


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Fill what older writers did not record; each filled value follows from what they did record."""
    backend = data.get("backend")
    if not isinstance(backend, dict):
        return data  # validation will name the problem
    provenance = msgspec.to_builtins(provenance_of_backend(backend))
    data.setdefault("energy_provenance", provenance)
    for node in data.get("nodes") or []:
        if isinstance(node, dict):
            node.setdefault("provenance", provenance)
    return data


def decode_report(content: bytes | str, origin: str = "<report>") -> Report:
    """Decode and validate report JSON; ``origin`` names it in errors."""
    try:
        return _DECODER.decode(content)  # the fast path: a report written by this version
    except msgspec.DecodeError:
        pass  # older or broken: find out which, and say so
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError as err:
        raise ReportError(f"report {origin} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ReportError(f"report {origin}: expected a JSON object with schema {SCHEMA!r}, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != SCHEMA:
        hint = (
            " (a newer report format: upgrade Magneton)"
            if isinstance(schema, str) and schema.startswith("magneton.report/")
            else " (not a Magneton report)"
        )
        raise ReportError(f"report {origin}: schema is {schema!r}, expected {SCHEMA!r}{hint}")
    try:
        return msgspec.convert(_upgrade(data), Report)
    except msgspec.ValidationError as err:
        raise ReportError(f"report {origin} does not match {SCHEMA}: {err}") from err


def load_report(path: str | Path) -> Report:
    """Read a report written by ``magneton analyze --json`` or ``Report.write``."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except FileNotFoundError as err:
        raise ReportError(f"report {path} does not exist") from err
    except OSError as err:
        raise ReportError(f"report {path} cannot be read: {err}") from err
    return decode_report(content, str(path))


__all__ = ["decode_report", "load_report"]
