"""Finding rules: walk the shipped catalog package and any user folders; no hand-kept registry.

Each ``.py`` file (not starting with ``_``) must define exactly one ``Rule`` subclass.
A folder is a user catalog: its files are imported by path under a private module name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from magneton.errors import MagnetonError
from magneton.findings import CATEGORIES
from magneton.rules.base import ID_RANGES, RULE_ID, Rule

CATALOG_PACKAGE = "magneton.rules_catalog"


class RuleError(MagnetonError):
    """A rule file is broken (import error, no or several rule classes, bad id) or an id is unknown."""


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[type[Rule], ...]  # sorted by id

    def by_id(self, rule_id: str) -> type[Rule]:
        for rule in self.rules:
            if rule.id == rule_id.upper():
                return rule
        raise RuleError(f"no rule {rule_id!r} (known: {', '.join(r.id for r in self.rules[:5])}, ...)")

    def select(self, ids: Sequence[str] = (), experimental: bool = False) -> tuple[type[Rule], ...]:
        """Rules to run: the named ids (experimental ones included when named), else all non-experimental."""
        if ids:
            return tuple(self.by_id(rule_id) for rule_id in ids)
        return tuple(r for r in self.rules if experimental or not r.experimental())


def _rule_class(module: ModuleType, where: str) -> type[Rule]:
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Rule) and obj is not Rule and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        names = ", ".join(c.__name__ for c in classes) or "none"
        raise RuleError(f"{where}: a rule file defines exactly one Rule subclass (found: {names})")
    return classes[0]


def validate_rule(rule: type[Rule], where: str) -> None:
    """The checks every rule must pass to be loaded at all."""
    for attribute in ("id", "name", "category", "message"):
        if not isinstance(getattr(rule, attribute, None), str) or not getattr(rule, attribute):
            raise RuleError(f"{where}: rule {rule.__name__} has no {attribute}")
    if not RULE_ID.match(rule.id) or rule.id[3] not in ID_RANGES:
        ranges = ", ".join(f"MAG{digit}xx" for digit in ID_RANGES)
        raise RuleError(f"{where}: rule id {rule.id!r} must be MAG + 3 digits in a published range ({ranges})")
    if rule.category not in CATEGORIES:
        raise RuleError(f"{where}: category {rule.category!r} is not one of {', '.join(CATEGORIES)}")
    if not (rule.has_source() or rule.has_graph() or rule.has_runtime()):
        raise RuleError(f"{where}: rule {rule.id} has no detector")


def _catalog_modules() -> Iterable[tuple[ModuleType, str]]:
    package = importlib.import_module(CATALOG_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.ispkg:
            continue
        name = f"{CATALOG_PACKAGE}.{info.name}"
        try:
            yield importlib.import_module(name), name
        except Exception as err:  # a broken rule file names itself, it does not crash with a bare traceback
            raise RuleError(f"rule module {name}: import failed: {type(err).__name__}: {err}") from err


def _folder_modules(folder: Path) -> Iterable[tuple[ModuleType, str]]:
    if not folder.is_dir():
        raise RuleError(f"--rules {folder}: not a folder")
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        name = f"_magneton_user_rule_{digest}_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise RuleError(f"{path}: cannot import")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            sys.modules.pop(name, None)
            raise RuleError(f"{path}: import failed: {type(err).__name__}: {err}") from err
        yield module, str(path)


@lru_cache(maxsize=8)
def _load(folders: tuple[str, ...]) -> RuleSet:
    found: dict[str, tuple[type[Rule], str]] = {}
    sources = [_catalog_modules()] + [_folder_modules(Path(folder)) for folder in folders]
    for modules in sources:
        for module, where in modules:
            rule = _rule_class(module, where)
            validate_rule(rule, where)
            if rule.id in found:
                raise RuleError(f"{where}: rule id {rule.id} is already used by {found[rule.id][1]}")
            found[rule.id] = (rule, where)
    return RuleSet(tuple(rule for rule, _ in sorted(found.values(), key=lambda item: item[0].id)))


def load_rules(folders: Sequence[str | Path] = ()) -> RuleSet:
    """The shipped catalog plus every user folder; raises RuleError naming a broken file."""
    return _load(tuple(str(Path(folder).resolve()) for folder in folders))


__all__ = ["CATALOG_PACKAGE", "RuleError", "RuleSet", "load_rules", "validate_rule"]
