"""Generate ``docs/report.md``, the field reference of ``magneton.report/1``, from the typed model.

Each struct's docstring, and each field's type, default and trailing comment in
``model.py`` / ``provenance.py`` / ``findings.py``, become one table, so the
reference cannot drift from the code (``just schema`` writes it; a test checks it).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import msgspec

from magneton.findings import Finding, FindingSource
from magneton.provenance import EnergyProvenance
from magneton.report.model import (
    SCHEMA,
    BackendSummary,
    CaptureSummary,
    Node,
    NodeSource,
    Region,
    Report,
    RollupLine,
    RollupOp,
    Rollups,
    TensorInfo,
)

DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "report.md"
STRUCTS: tuple[type[msgspec.Struct], ...] = (
    Report,
    BackendSummary,
    EnergyProvenance,
    CaptureSummary,
    Node,
    NodeSource,
    TensorInfo,
    Rollups,
    RollupLine,
    RollupOp,
    Finding,
    FindingSource,
    Region,
)
# ``name: annotation`` then an optional `` = default`` (spaces around "=", unlike Meta(ge=0)) and ``# comment``.
_FIELD = re.compile(r"^    (\w+): (.+?)(?: = .+?)?(?:  # (.*))?$")
_COMMENT = re.compile(r"^    # ?(.*)$")


def _field_lines(cls: type) -> dict[str, tuple[str, str]]:
    """Field name -> (annotation as written, its comment: trailing, or the comment lines just above it)."""
    found: dict[str, tuple[str, str]] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        comment = _COMMENT.match(line)
        if comment:
            above.append(comment.group(1).strip())
            continue
        match = _FIELD.match(line)
        if match and match.group(1) in cls.__struct_fields__:  # type: ignore[attr-defined]
            found[match.group(1)] = (match.group(2).strip(), (match.group(3) or " ".join(above)).strip())
        above = []
    return found


def _default(cls: type[msgspec.Struct], name: str) -> str:
    for field in msgspec.structs.fields(cls):
        if field.name != name:
            continue
        if field.required:
            return "required"
        if field.default is not msgspec.NODEFAULT:
            return f"`{msgspec.json.encode(field.default).decode()}`"
        return f"`{msgspec.json.encode(field.default_factory()).decode()}`"
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def docs_text() -> str:
    out = [
        f"# The `{SCHEMA}` report",
        "",
        "Generated from `magneton/report/model.py` by `just schema`; do not edit. The JSON Schema is",
        "`magneton/schemas/report-1.schema.json`; `magneton.load_report(path)` reads a report into these types.",
        "Field names are a public contract: fields may be added, none is renamed. Energies are joules per call of",
        "the workload (`energy_scope`), and every energy-bearing object says where its joules came from",
        "(`EnergyProvenance`).",
        "",
    ]
    for cls in STRUCTS:
        doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        out += [f"## `{cls.__name__}`", "", doc, "", "| field | type | default | meaning |", "|---|---|---|---|"]
        lines = _field_lines(cls)
        for name in cls.__struct_fields__:
            annotation, comment = lines.get(name, ("", ""))
            out.append(f"| `{name}` | `{_cell(annotation)}` | {_default(cls, name)} | {_cell(comment)} |")
        out.append("")
    return "\n".join(out)


__all__ = ["DOCS_PATH", "docs_text"]
