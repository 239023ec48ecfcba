"""What a rule is: identity, documentation, embedded examples, detectors and an optional fixer.

A rule is one class in one file of a catalog folder (the shipped ``rules/`` or a
user's ``--rules DIR``). Its id says which detector kind it is (see ``ID_RANGES``);
its docstring is the user documentation; its ``VALID``/``INVALID`` examples are
its tests. Detectors are methods a subclass overrides:

- ``check_source(node, ctx)``: called for every libcst node of a type in
  ``node_types``; yields ``SourceHit``s (a ``replacement`` makes it a fixer);
- ``check_graph(view)``: a pattern over the captured ``OpGraph``; yields ``GraphHit``s;
- ``check_runtime(env)``: a configuration check against the torch settings and
  device of an analysed workload; yields ``GraphHit``s over the nodes it concerns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from magneton.findings import Category

if TYPE_CHECKING:
    import libcst as cst

    from magneton.rules.graphview import GraphView
    from magneton.rules.runtime import RuntimeEnv
    from magneton.rules.source import SourceContext

RULE_ID = re.compile(r"^MAG[0-9]{3}$")

# The first digit of a rule id says what kind of detector it is. Published in docs/rules.md.
ID_RANGES: dict[str, tuple[str, str]] = {
    "1": ("source", "MAG100-MAG199: source rules, decided statically by libcst on the code as written"),
    "2": ("graph", "MAG200-MAG299: graph rules, patterns over the captured operator graph (library code included)"),
    "3": ("configuration", "MAG300-MAG399: configuration rules: settings, data loading and torch flags"),
    "9": ("experimental", "MAG900-MAG999: experimental rules, off unless asked for (--experimental or --rule ID)"),
}


@dataclass(frozen=True)
class Valid:
    """Code the rule must stay silent on; ``why`` says what makes it fine."""

    code: str
    why: str = ""
    env: Mapping[str, Any] = field(default_factory=dict)  # runtime overrides (configuration rules)


@dataclass(frozen=True)
class Invalid:
    """Code the rule must flag; ``expected_fix`` is the fixer's output when the rule has one."""

    code: str
    expected_fix: str | None = None
    line: int | None = None  # 1-based line of the first hit, when the example pins it
    env: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Knob:
    """A torch setting that closes the gap (toggled on replay, or written by the user)."""

    setting: str  # e.g. "torch.backends.cudnn.benchmark"
    value: Any
    how: str  # the line of code that sets it


@dataclass(frozen=True)
class SourceHit:
    node: cst.CSTNode
    message: str | None = None  # None: the rule's message
    replacement: cst.CSTNode | None = None  # set by fixers: the node that replaces ``node``


@dataclass(frozen=True)
class GraphHit:
    nodes: tuple[str, ...]  # OpNode ids, the first is the one whose source the finding shows
    message: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class Rule:
    """Base class of every rule. Subclasses set the class attributes and override detectors."""

    id: ClassVar[str]
    name: ClassVar[str]  # kebab-case, stable
    category: ClassVar[Category]
    message: ClassVar[str]  # one sentence: what is wrong here
    suggestion: ClassVar[str] = ""  # what to write instead
    references: ClassVar[tuple[str, ...]] = ()  # public URLs backing the "why"
    knob: ClassVar[Knob | None] = None
    fixable: ClassVar[bool] = False  # True: check_source yields replacements for some hits
    # Source prefilter: code containing none of these cannot match and is not parsed for this rule. An entry is a
    # string, or a tuple of strings that must all occur. Checked per file and per top-level function/method.
    needles: ClassVar[tuple[str | tuple[str, ...], ...]] = ("torch",)
    node_types: ClassVar[tuple[type, ...]] = ()  # libcst node classes passed to check_source
    VALID: ClassVar[tuple[Valid | str, ...]] = ()
    INVALID: ClassVar[tuple[Invalid | str, ...]] = ()

    # ---- detectors (override) -------------------------------------------------------------
    def check_source(self, node: cst.CSTNode, ctx: SourceContext) -> Iterator[SourceHit]:
        return iter(())

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        return iter(())

    def check_runtime(self, env: RuntimeEnv) -> Iterator[GraphHit]:
        return iter(())

    # ---- derived facts ----------------------------------------------------------------------
    @classmethod
    def kind(cls) -> str:
        return ID_RANGES[cls.id[3]][0]

    @classmethod
    def experimental(cls) -> bool:
        return cls.id[3] == "9"

    @classmethod
    def has_source(cls) -> bool:
        return cls.check_source is not Rule.check_source

    @classmethod
    def has_graph(cls) -> bool:
        return cls.check_graph is not Rule.check_graph

    @classmethod
    def has_runtime(cls) -> bool:
        return cls.check_runtime is not Rule.check_runtime

    @classmethod
    def doc(cls) -> str:
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def valid_examples(cls) -> list[Valid]:
        return [e if isinstance(e, Valid) else Valid(e) for e in cls.VALID]

    @classmethod
    def invalid_examples(cls) -> list[Invalid]:
        return [e if isinstance(e, Invalid) else Invalid(e) for e in cls.INVALID]

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        return cls.doc().split("\n", 1)[0].strip()


__all__ = ["ID_RANGES", "RULE_ID", "GraphHit", "Invalid", "Knob", "Rule", "SourceHit", "Valid"]
