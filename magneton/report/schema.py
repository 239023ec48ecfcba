"""Generate ``schemas/report-1.schema.json`` and ``docs/report.md`` from the typed model (``just schema``).

A test fails when either checked-in file drifts from the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from magneton.report.model import SCHEMA, Report

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "report-1.schema.json"


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``magneton.report/1``, generated from :class:`Report`."""
    generated = msgspec.json.schema(Report)
    definitions = generated["$defs"]
    report = definitions["Report"]
    # Fields with defaults are optional when decoding old reports, but the writer always sets these.
    report["required"] = sorted(set(report.get("required", [])) | {"schema", "magneton_version"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA,
        "title": "Magneton energy report",
        "description": (
            "magneton.report/1, generated from magneton/report/model.py by `just schema`; do not edit. "
            "Fields may be added; none is renamed. Energies are joules per call of the workload "
            "(energy_scope); every energy-bearing object carries its provenance."
        ),
        "$ref": "#/$defs/Report",
        # A single-target report names its target; a diff names both.
        "anyOf": [
            {"properties": {"target": {"type": "string"}}, "required": ["target"]},
            {"properties": {"targets": {"type": "array", "items": {"type": "string"}}}, "required": ["targets"]},
        ],
        "$defs": definitions,
    }


def schema_text() -> str:
    return json.dumps(report_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema file (or with ``--check``, exit 1 when the checked-in file differs)."""
    from magneton.report.docs import DOCS_PATH, docs_text

    argv = sys.argv[1:] if argv is None else argv
    outputs = ((SCHEMA_PATH, schema_text()), (DOCS_PATH, docs_text()))
    if "--check" in argv:
        stale = [path for path, text in outputs if (path.read_text(encoding="utf-8") if path.exists() else "") != text]
        for path in stale:
            print(f"{path} is out of date: run `just schema`", file=sys.stderr)
        return 1 if stale else 0
    from magneton.atomic import write_text_atomic

    for path, text in outputs:
        write_text_atomic(path, text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
