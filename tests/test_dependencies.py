"""Declared runtime dependencies are the ones the package imports."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _runtime_dependencies() -> list[str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    from packaging.requirements import Requirement

    requirements = [Requirement(spec) for spec in project["dependencies"]]
    # A dependency for other Python versions (tomli on 3.10) is not installed here to be checked.
    return [r.name for r in requirements if r.marker is None or r.marker.evaluate()]


def _imported_top_level_modules() -> set[str]:
    pattern = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
    modules: set[str] = set()
    for folder in ("magneton", "rules", "corpus"):
        for path in (REPO / folder).rglob("*.py"):
            modules.update(pattern.findall(path.read_text()))
    return modules


def test_every_runtime_dependency_is_imported() -> None:
    distributions = importlib.metadata.packages_distributions()
    imported = _imported_top_level_modules()
    imported_distributions = {dist.lower() for module in imported for dist in distributions.get(module, [])}
    unused = [name for name in _runtime_dependencies() if name.lower() not in imported_distributions]
    assert unused == [], f"declared in pyproject.toml but never imported by the package: {unused}"
