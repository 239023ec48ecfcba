"""Corpus cases: one folder each, with ``slow.py``, ``fast.py`` and a ``case.toml``.

``case.toml`` is parsed into a frozen :class:`Case` here, and every way it can be
wrong gets a :class:`CaseError` naming the file and the field. Loading a whole
corpus never stops at one broken case: :func:`load_corpus` returns the good cases
and, separately, one error per broken folder.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magneton.errors import MagnetonError
from magneton.findings import CATEGORIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has no tomllib; tomli is the same parser
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

CASE_FILE = "case.toml"
VARIANTS = ("slow", "fast")
ORIGINS = ("known", "new", "extra")  # DESIGN.md's 16 known and 8 new reference cases, or another public issue
DEVICES = ("any", "cpu", "cuda")
EXTRAS = ("hf",)
WORKLOAD_FUNCTION = "workload"

_TOP_KEYS = {"id", "title", "category", "origin", "quick", "description", "reference", "expected", "device", "measured"}
_REFERENCE_KEYS = {"system", "url", "issue", "reported"}
_EXPECTED_KEYS = {"rules", "lines", "fixable", "notes"}
_DEVICE_KEYS = {"requires", "extras", "reason"}
_MEASURED_KEYS = {
    "ratio",
    "slow_energy_j",
    "fast_energy_j",
    "provenance",
    "backend",
    "machine",
    "trials",
    "date",
    "note",
    "allocator",
}


class CaseError(MagnetonError):
    """A corpus case folder or its ``case.toml`` is unusable; the message names the file and the field."""

    def __init__(self, where: Path | str, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Reference:
    """The public issue or pull request a case recreates."""

    system: str  # the ML system it was found in: PyTorch, vLLM, transformers, ...
    url: str
    reported: str = ""  # what the reference (or the Magneton paper) reported, e.g. "12.6% energy, GPU"


@dataclass(frozen=True)
class Expected:
    """What a detector should find in the slow variant."""

    rules: tuple[str, ...]  # catalog ids (MAG...) the finding should carry
    lines: tuple[int, ...]  # 1-based lines of slow.py that hold the waste
    fixable: bool = False  # a catalog fixer should rewrite the slow variant into a cheaper one


@dataclass(frozen=True)
class DeviceRequirement:
    requires: str = "any"  # any | cpu | cuda
    extras: tuple[str, ...] = ()  # optional dependency groups the case imports (``hf``: transformers, diffusers)
    reason: str = ""  # why a device is required: shown when the case is skipped


@dataclass(frozen=True)
class Measured:
    """The slow/fast energy ratio measured by ``magneton corpus validate``, with where it was measured."""

    ratio: float | None  # median over interleaved trials of slow energy / fast energy; None: not measurable here
    provenance: str = ""  # measured (sensor) or estimated (formula), as the backend says
    backend: str = ""
    machine: str = ""
    trials: int = 0
    date: str = ""
    slow_energy_j: float | None = None
    fast_energy_j: float | None = None
    note: str = ""
    allocator: str = ""  # "settled", "process" or "steady": see magneton.measure.allocator


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    category: str
    origin: str
    folder: Path
    reference: Reference
    expected: Expected
    device: DeviceRequirement
    measured: Measured
    quick: bool = False  # part of the quick subset CI runs end to end
    description: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def variant_path(self, variant: str) -> Path:
        return self.folder / f"{variant}.py"

    def target(self, variant: str) -> str:
        return f"{self.variant_path(variant)}:{WORKLOAD_FUNCTION}"

    @property
    def slow_path(self) -> Path:
        return self.variant_path("slow")

    @property
    def fast_path(self) -> Path:
        return self.variant_path("fast")


def _table(data: Mapping[str, Any], key: str, where: Path, required: bool = True) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise CaseError(where, f"missing table [{key}]")
        return {}
    if not isinstance(value, Mapping):
        raise CaseError(where, f"[{key}] must be a table, got {type(value).__name__}")
    return value


def _unknown(data: Mapping[str, Any], allowed: set[str], where: Path, section: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"[{section}] " if section else ""
        raise CaseError(where, f"{prefix}unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _string(data: Mapping[str, Any], key: str, where: Path, section: str = "", required: bool = True) -> str:
    value = data.get(key)
    name = f"{section}.{key}" if section else key
    if value is None:
        if required:
            raise CaseError(where, f"missing {name}")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise CaseError(where, f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _choice(value: str, choices: Sequence[str], where: Path, name: str) -> str:
    if value not in choices:
        raise CaseError(where, f"{name} is {value!r}; expected one of: {', '.join(choices)}")
    return value


def _string_list(data: Mapping[str, Any], key: str, where: Path, section: str, required: bool) -> tuple[str, ...]:
    value = data.get(key, [] if not required else None)
    name = f"{section}.{key}"
    if value is None:
        raise CaseError(where, f"missing {name}")
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CaseError(where, f"{name} must be a list of non-empty strings, got {value!r}")
    if required and not value:
        raise CaseError(where, f"{name} must name at least one entry")
    return tuple(v.strip() for v in value)


def _optional_float(data: Mapping[str, Any], key: str, where: Path) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise CaseError(where, f"measured.{key} must be a positive number, got {value!r}")
    return float(value)


def parse_case(data: Mapping[str, Any], folder: Path) -> Case:
    """Check a parsed ``case.toml`` against the schema; raise CaseError naming the first problem."""
    where = folder / CASE_FILE
    _unknown(data, _TOP_KEYS, where, "")
    case_id = _string(data, "id", where)
    if case_id != folder.name:
        raise CaseError(where, f"id {case_id!r} must equal the folder name {folder.name!r}")
    title = _string(data, "title", where)
    category = _choice(_string(data, "category", where), CATEGORIES, where, "category")
    origin = _choice(_string(data, "origin", where), ORIGINS, where, "origin")
    quick = data.get("quick", False)
    if not isinstance(quick, bool):
        raise CaseError(where, f"quick must be true or false, got {quick!r}")

    reference_data = _table(data, "reference", where)
    _unknown(reference_data, _REFERENCE_KEYS, where, "reference")
    url = _string(reference_data, "url", where, "reference")
    if not url.startswith("https://"):
        raise CaseError(where, f"reference.url must be a public https:// URL, got {url!r}")
    reference = Reference(
        system=_string(reference_data, "system", where, "reference"),
        url=url,
        reported=_string(reference_data, "reported", where, "reference", required=False),
    )

    expected_data = _table(data, "expected", where)
    _unknown(expected_data, _EXPECTED_KEYS, where, "expected")
    rules = _string_list(expected_data, "rules", where, "expected", required=True)
    lines = expected_data.get("lines")
    if (
        not isinstance(lines, list)
        or not lines
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in lines)
    ):
        raise CaseError(
            where, f"expected.lines must be a non-empty list of line numbers (>= 1) in slow.py, got {lines!r}"
        )
    fixable = expected_data.get("fixable", False)
    if not isinstance(fixable, bool):
        raise CaseError(where, f"expected.fixable must be true or false, got {fixable!r}")
    expected = Expected(rules=rules, lines=tuple(lines), fixable=fixable)

    device_data = _table(data, "device", where)
    _unknown(device_data, _DEVICE_KEYS, where, "device")
    requires = _choice(_string(device_data, "requires", where, "device"), DEVICES, where, "device.requires")
    extras = _string_list(device_data, "extras", where, "device", required=False)
    for extra in extras:
        _choice(extra, EXTRAS, where, "device.extras entry")
    reason = _string(device_data, "reason", where, "device", required=requires == "cuda")
    device = DeviceRequirement(requires=requires, extras=extras, reason=reason)

    measured_data = _table(data, "measured", where)
    _unknown(measured_data, _MEASURED_KEYS, where, "measured")
    ratio = _optional_float(measured_data, "ratio", where)
    note = _string(measured_data, "note", where, "measured", required=False)
    if ratio is None and not note:
        raise CaseError(where, "measured.ratio is missing: give the measured slow/fast ratio, or a note saying why not")
    trials = measured_data.get("trials", 0)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 0:
        raise CaseError(where, f"measured.trials must be a whole number, got {trials!r}")
    measured = Measured(
        ratio=ratio,
        provenance=_string(measured_data, "provenance", where, "measured", required=ratio is not None),
        backend=_string(measured_data, "backend", where, "measured", required=ratio is not None),
        machine=_string(measured_data, "machine", where, "measured", required=ratio is not None),
        trials=trials,
        date=_string(measured_data, "date", where, "measured", required=False),
        slow_energy_j=_optional_float(measured_data, "slow_energy_j", where),
        fast_energy_j=_optional_float(measured_data, "fast_energy_j", where),
        note=note,
        allocator=_string(measured_data, "allocator", where, "measured", required=False),
    )
    if measured.provenance and measured.provenance not in ("measured", "estimated"):
        raise CaseError(where, f"measured.provenance must be 'measured' or 'estimated', got {measured.provenance!r}")

    for variant in VARIANTS:
        if not (folder / f"{variant}.py").is_file():
            raise CaseError(folder, f"missing {variant}.py (each case has slow.py and fast.py)")
    return Case(
        id=case_id,
        title=title,
        category=category,
        origin=origin,
        folder=folder,
        reference=reference,
        expected=expected,
        device=device,
        measured=measured,
        quick=quick,
        description=_string(data, "description", where, required=False),
        raw=dict(data),
    )


def load_case(folder: Path) -> Case:
    """Read and check one case folder."""
    path = folder / CASE_FILE
    if not path.is_file():
        raise CaseError(folder, f"no {CASE_FILE} in this case folder")
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise CaseError(path, "reading case.toml needs Python 3.11+ (tomllib) or the tomli package: pip install tomli")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise CaseError(path, f"not valid TOML: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise CaseError(path, f"cannot read: {err}") from err
    return parse_case(data, folder)


def default_root() -> Path:
    """The corpus shipped with the package (the repository's top-level ``corpus/``)."""
    import magneton.corpus_cases

    return Path(magneton.corpus_cases.__file__).resolve().parent


def case_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise CaseError(root, "corpus folder not found")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


@dataclass(frozen=True)
class LoadedCorpus:
    cases: tuple[Case, ...]
    errors: tuple[CaseError, ...]  # one per broken folder; the other cases still load


def load_corpus(root: Path | None = None, ids: Sequence[str] = (), quick: bool = False) -> LoadedCorpus:
    """Every case under ``root`` (or the named ones, or the quick subset); broken ones become errors."""
    root = root or default_root()
    folders = case_folders(root)
    errors: list[CaseError] = []
    if ids:
        by_name = {p.name: p for p in folders}
        missing = [i for i in ids if i not in by_name]
        for name in missing:
            close = sorted(n for n in by_name if name in n or n in name)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            errors.append(CaseError(root, f"no case {name!r}{hint}"))
        folders = [by_name[i] for i in ids if i in by_name]
    cases: list[Case] = []
    for folder in folders:
        try:
            case = load_case(folder)
        except CaseError as err:
            errors.append(err)
            continue
        if quick and not case.quick:
            continue
        cases.append(case)
    return LoadedCorpus(tuple(cases), tuple(errors))


def source_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def line_holds_code(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith("#")


__all__ = [
    "CASE_FILE",
    "Case",
    "CaseError",
    "DeviceRequirement",
    "Expected",
    "LoadedCorpus",
    "Measured",
    "Reference",
    "case_folders",
    "default_root",
    "line_holds_code",
    "load_case",
    "load_corpus",
    "parse_case",
    "source_lines",
]
