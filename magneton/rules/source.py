"""The source side of the rules: one libcst traversal per file, every source rule dispatched by node type.

Speed matters (``magneton lint`` over a whole model zoo): a file is parsed only when at
least one rule's ``needles`` occur in its text, names are resolved through the file's
own imports (``import torch as t; t.softmax`` is ``torch.softmax``) in the same single
pass, and positions are computed only for files that have a hit.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from magneton.rules.base import Rule, SourceHit

if TYPE_CHECKING:
    from magneton.findings import Category

_BUILTINS = frozenset(dir(builtins))
_SUPPRESS = re.compile(r"#\s*magneton:\s*ignore(?:\[(?P<ids>[A-Za-z0-9_,\s]*)\])?")
_SCOPES = (cst.FunctionDef, cst.Lambda, cst.ClassDef)
_LOOPS = (cst.For, cst.While, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


@dataclass(frozen=True)
class SourceMatch:
    """One hit of a source rule, with its position and (for fixers) the replacement code."""

    rule: str
    name: str
    category: Category
    path: str
    line: int
    column: int  # 1-based
    end_line: int
    end_column: int
    message: str
    suggestion: str
    expression: str  # the flagged libcst expression, as source text
    code: str  # the first flagged line, stripped
    replacement: str | None = None  # the fixer's code for ``expression``

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": self.name,
            "category": self.category,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "message": self.message,
            "suggestion": self.suggestion,
            "expression": self.expression,
            "code": self.code,
            "replacement": self.replacement,
        }


@dataclass
class FileResult:
    path: str
    matches: list[SourceMatch] = field(default_factory=list)
    error: str | None = None  # the file could not be read or parsed: reported, the batch goes on
    parsed: bool = False  # False when the prefilter showed no rule could match
    lines: int = 0


_TOKEN_FIELDS = frozenset(
    {
        "lpar", "rpar", "comma", "semicolon", "leading_lines", "lines_after_decorators", "header", "footer",
        "trailing_whitespace", "equal", "operator", "lbracket", "rbracket", "lbrace", "rbrace", "colon", "dot",
        "newline", "first_line", "empty_lines", "whitespace", "asynchronous",
    }
)  # fmt: skip
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields_of(node_type: type) -> tuple[str, ...]:
    names = _CHILD_FIELDS.get(node_type)
    if names is None:
        import dataclasses

        names = tuple(
            f.name
            for f in dataclasses.fields(node_type)
            if f.name not in _TOKEN_FIELDS and not f.name.startswith("whitespace")
        )
        _CHILD_FIELDS[node_type] = names
    return names


def child_nodes(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The node's children that carry code (whitespace, commas, parentheses and operators left out), in order.

    libcst's ``children`` and ``visit`` rebuild every node on the way; reading the dataclass fields is several
    times faster, and a linter only reads.
    """
    out: list[cst.CSTNode] = []
    for name in _fields_of(type(node)):
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, cst.CSTNode))
    return out


class SourceContext:
    """What a source detector may ask about the file it looks at."""

    def __init__(self, module: cst.Module, path: str, text: str = "") -> None:
        self.module = module
        self.path = path
        self.text = text  # the file as read: cheap substring checks without regenerating code
        self.aliases: dict[str, str] = {}  # local name -> qualified name, from the imports seen so far
        self.stack: list[cst.CSTNode] = []  # ancestors of the node being checked, outermost first
        self.needed_imports: set[str] = set()  # modules a fixer's replacement refers to
        self._assignments: dict[int, _AssignmentCollector] = {}

    # ---- names ---------------------------------------------------------------------------
    def record_import(self, node: cst.Import | cst.ImportFrom) -> None:
        if isinstance(node, cst.Import):
            for alias in node.names:
                dotted = _dotted(alias.name)
                if dotted is None:
                    continue
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self.aliases[alias.asname.name.value] = dotted
                else:
                    root = dotted.split(".", 1)[0]
                    self.aliases[root] = root
            return
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        base = _dotted(node.module)
        if base is None:
            return
        for alias in node.names:
            name = _dotted(alias.name)
            if name is None:
                continue
            local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else name
            self.aliases[local] = f"{base}.{name}"

    def qualified_name(self, node: cst.CSTNode) -> str | None:
        """``torch.nn.functional.softmax`` for ``F.softmax`` after ``import torch.nn.functional as F``; else None."""
        if isinstance(node, cst.Name):
            if node.value in self.aliases:
                return self.aliases[node.value]
            return f"builtins.{node.value}" if node.value in _BUILTINS else None
        if isinstance(node, cst.Attribute):
            owner = self.qualified_name(node.value)
            return f"{owner}.{node.attr.value}" if owner and not owner.startswith("builtins.") else None
        return None

    def call_name(self, node: cst.CSTNode) -> str | None:
        return self.qualified_name(node.func) if isinstance(node, cst.Call) else None

    def is_call(self, node: cst.CSTNode, *names: str) -> bool:
        """A call of one of the qualified ``names`` (``torch.softmax``, ...)."""
        return isinstance(node, cst.Call) and self.call_name(node) in names

    def method_receiver(self, node: cst.CSTNode, *methods: str) -> cst.BaseExpression | None:
        """For ``x.method(...)`` on a value (not a module), the receiver ``x``."""
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in methods
            and self.qualified_name(node.func) is None
        ):
            return node.func.value
        return None

    def ref(self, qualified: str) -> str:
        """The shortest spelling of ``qualified`` in this file; records ``import torch`` when nothing fits."""
        best: str | None = None
        for local, target in self.aliases.items():
            if qualified == target or qualified.startswith(target + "."):
                spelled = local + qualified[len(target) :]
                if best is None or len(spelled) < len(best):
                    best = spelled
        if best is None:
            self.needed_imports.add(qualified.split(".", 1)[0])
            return qualified
        return best

    def parse(self, expression: str) -> cst.BaseExpression:
        return cst.parse_expression(expression)

    # ---- code and values -------------------------------------------------------------------
    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def same(self, a: cst.CSTNode | None, b: cst.CSTNode | None) -> bool:
        """Same expression, whitespace and comments aside."""
        return a is not None and b is not None and _squash(self.code(a)) == _squash(self.code(b))

    @staticmethod
    def number(node: cst.CSTNode | None) -> float | None:
        if isinstance(node, (cst.Integer, cst.Float)):
            return float(node.evaluated_value)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            inner = SourceContext.number(node.expression)
            return -inner if inner is not None else None
        return None

    @staticmethod
    def arg(call: cst.Call, position: int | None, keyword: str | None = None) -> cst.BaseExpression | None:
        """The argument at ``position`` (positional) or named ``keyword``."""
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if position is not None and position < len(positional):
            return positional[position].value
        for a in call.args:
            if keyword is not None and a.keyword is not None and a.keyword.value == keyword:
                return a.value
        return None

    @staticmethod
    def has_star(call: cst.Call) -> bool:
        return any(a.star for a in call.args)

    @staticmethod
    def keywords(call: cst.Call) -> dict[str, cst.BaseExpression]:
        return {a.keyword.value: a.value for a in call.args if a.keyword is not None}

    # ---- where the node is -------------------------------------------------------------------
    def parent(self, levels: int = 1) -> cst.CSTNode | None:
        return self.stack[-levels] if len(self.stack) >= levels else None

    def in_loop(self) -> bool:
        """Inside a loop body (or comprehension) of the same function."""
        for ancestor in reversed(self.stack):
            if isinstance(ancestor, _SCOPES):
                return False
            if isinstance(ancestor, _LOOPS):
                return True
        return False

    def enclosing_loop(self) -> cst.CSTNode | None:
        for ancestor in reversed(self.stack):
            if isinstance(ancestor, _SCOPES):
                return None
            if isinstance(ancestor, (cst.For, cst.While)):
                return ancestor
        return None

    def scope(self) -> cst.CSTNode:
        for ancestor in reversed(self.stack):
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
                return ancestor
        return self.module

    def function(self) -> cst.FunctionDef | None:
        for ancestor in reversed(self.stack):
            if isinstance(ancestor, cst.FunctionDef):
                return ancestor
        return None

    def _table(self) -> _AssignmentCollector:
        scope = self.scope()
        table = self._assignments.get(id(scope))
        if table is None:
            table = self._assignments[id(scope)] = _assignment_table(scope)
        return table

    def assignments(self, name: str) -> list[cst.BaseExpression]:
        """Every value assigned to ``name`` in the enclosing function (or module), in source order."""
        return [value for _, value in self._table().table.get(name, [])]

    def resolve(self, node: cst.BaseExpression | None) -> cst.BaseExpression | None:
        """A name stands for the value of its last assignment before the statement using it (same function).

        Unknown values (parameters, loop targets, unpacking) and names used before any assignment resolve to
        themselves, so detectors never guess.
        """
        if not isinstance(node, cst.Name):
            return node
        table = self._table()
        at = table.name_at.get(id(node))
        if at is None:
            return node
        earlier = [value for index, value in table.table.get(node.value, []) if index < at]
        if not earlier or earlier[-1] is _UNKNOWN or id(earlier[-1]) in table.unpacked:
            return node
        return earlier[-1]

    def unpacked_from(self, node: cst.BaseExpression | None) -> tuple[cst.BaseExpression, int] | None:
        """For a name last assigned by ``a, b = value``: (value, its position in the tuple)."""
        if not isinstance(node, cst.Name):
            return None
        table = self._table()
        at = table.name_at.get(id(node))
        if at is None:
            return None
        earlier = [value for index, value in table.table.get(node.value, []) if index < at]
        return table.unpacked.get(id(earlier[-1])) if earlier else None


def _dotted(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        owner = _dotted(node.value)
        return f"{owner}.{node.attr.value}" if owner else None
    return None


def _squash(code: str) -> str:
    return re.sub(r"\s+", "", code)


class _AssignmentCollector:
    """Values assigned to each name, in source order, and the statement number each Name occurs in."""

    def __init__(self, root: cst.CSTNode) -> None:
        self.root = root
        self.table: dict[str, list[tuple[int, cst.BaseExpression]]] = {}
        self.unpacked: dict[int, tuple[cst.BaseExpression, int]] = {}  # id(marker) -> (value, position)
        self.name_at: dict[int, int] = {}
        self.statement = 0
        stack = [root]
        while stack:
            node = stack.pop()
            if self.on_visit(node):
                stack.extend(reversed(child_nodes(node)))

    def _add(self, name: str, value: cst.BaseExpression) -> None:
        self.table.setdefault(name, []).append((self.statement, value))

    def on_visit(self, node: cst.CSTNode) -> bool:
        if node is not self.root and isinstance(node, _SCOPES):
            return False  # nested functions and classes have their own names
        if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            self.statement += 1
        elif isinstance(node, cst.Name):
            self.name_at[id(node)] = self.statement
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    self._add(target.target.value, node.value)
                elif isinstance(target.target, (cst.Tuple, cst.List)) and all(
                    isinstance(e.value, cst.Name) for e in target.target.elements
                ):  # a, b = f(...): each name is element i of the value
                    for position, element in enumerate(target.target.elements):
                        marker = cst.Name("__unpacked__")
                        self.unpacked[id(marker)] = (node.value, position)
                        self._add(element.value.value, marker)  # type: ignore[attr-defined]
                else:  # starred or nested unpacking: the names are assigned, with no single value
                    for name in _target_names(target.target):
                        self._add(name, _UNKNOWN)
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)) and isinstance(node.target, cst.Name):
            value = node.value if isinstance(node, cst.AnnAssign) and node.value is not None else _UNKNOWN
            self._add(node.target.value, value)
        elif isinstance(node, (cst.For, cst.CompFor, cst.With, cst.NamedExpr)):
            targets: list[cst.CSTNode] = []
            if isinstance(node, (cst.For, cst.CompFor, cst.NamedExpr)):
                targets = [node.target]
            else:
                targets = [item.asname.name for item in node.items if item.asname is not None]
            for bound in targets:
                for name in _target_names(bound):
                    self._add(name, _UNKNOWN)
        elif isinstance(node, cst.Param):
            self._add(node.name.value, _UNKNOWN)
        return True


_UNKNOWN = cst.Name("__unknown__")


def _target_names(node: cst.CSTNode) -> list[str]:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [name for element in node.elements for name in _target_names(element.value)]
    if isinstance(node, cst.StarredElement):
        return _target_names(node.value)
    return []


def _assignment_table(scope: cst.CSTNode) -> _AssignmentCollector:
    return _AssignmentCollector(scope)


@dataclass
class _RawHit:
    rule: type[Rule]
    hit: SourceHit


class _Dispatcher:
    def __init__(self, ctx: SourceContext, rules: Sequence[Rule]) -> None:
        self.ctx = ctx
        self.by_type: dict[type, list[Rule]] = {}
        for rule in rules:
            for node_type in rule.node_types:
                self.by_type.setdefault(node_type, []).append(rule)
        self.hits: list[_RawHit] = []
        self.errors: list[str] = []

    def run(self, root: cst.CSTNode) -> None:
        """Depth first, in source order; ``ctx.stack`` holds the ancestors of the node being checked."""
        stack = self.ctx.stack
        todo: list[tuple[cst.CSTNode, bool]] = [(root, False)]
        while todo:
            node, leaving = todo.pop()
            if leaving:
                stack.pop()
                continue
            self.check(node)
            stack.append(node)
            todo.append((node, True))
            todo.extend((child, False) for child in reversed(child_nodes(node)))

    def check(self, node: cst.CSTNode) -> None:
        if isinstance(node, (cst.Import, cst.ImportFrom)):
            self.ctx.record_import(node)
        for rule in self.by_type.get(type(node), ()):
            try:
                for hit in rule.check_source(node, self.ctx):
                    self.hits.append(_RawHit(type(rule), hit))
            except Exception as err:  # a buggy rule must not take the file (or the batch) down with it
                self.errors.append(f"rule {rule.id} crashed: {type(err).__name__}: {err}")


def _prime_imports(ctx: SourceContext, body: Sequence[cst.CSTNode]) -> None:
    """Top-level imports (also inside if/try blocks) are known before any function body is checked."""
    for statement in body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, (cst.Import, cst.ImportFrom)):
                    ctx.record_import(small)
        elif isinstance(statement, (cst.If, cst.Try, cst.With)):
            _prime_imports(ctx, list(statement.body.body))
            for extra in getattr(statement, "handlers", ()):
                _prime_imports(ctx, list(extra.body.body))
            orelse = getattr(statement, "orelse", None)
            if orelse is not None and hasattr(orelse, "body"):
                inner = orelse.body if isinstance(orelse, cst.If) else orelse.body
                _prime_imports(ctx, list(getattr(inner, "body", [])))


def suppressed_ids(line_text: str) -> set[str] | None:
    """Ids suppressed by a ``# magneton: ignore[...]`` comment; ``{"*"}`` for a bare ignore; None without one."""
    match = _SUPPRESS.search(line_text)
    if match is None:
        return None
    ids = match.group("ids")
    if ids is None or not ids.strip():
        return {"*"}
    return {part.strip().upper() for part in ids.split(",") if part.strip()}


def _is_suppressed(rule_id: str, lines: list[str], start: int, end: int) -> bool:
    """An ignore comment on any line of the hit, or alone on the line above it."""
    candidates = list(range(start, end + 1))
    if start >= 2 and lines[start - 2].lstrip().startswith("#"):
        candidates.append(start - 1)
    for number in candidates:
        if 1 <= number <= len(lines):
            ids = suppressed_ids(lines[number - 1])
            if ids is not None and ("*" in ids or rule_id in ids):
                return True
    return False


def applicable(rules: Sequence[type[Rule]], text: str) -> list[type[Rule]]:
    return [r for r in rules if r.has_source() and r.node_types and _any_needle(r.needles, text)]


def _any_needle(needles: Sequence[str | tuple[str, ...]], text: str) -> bool:
    for needle in needles:
        if isinstance(needle, str):
            if needle in text:
                return True
        elif all(part in text for part in needle):
            return True
    return False


@dataclass
class SourceRun:
    """A parsed file and the raw hits of its rules, kept for fixers."""

    module: cst.Module
    ctx: SourceContext
    hits: list[_RawHit]
    errors: list[str]


def run_rules(text: str, path: str, rules: Sequence[type[Rule]]) -> SourceRun | None:
    """Parse and run; None when no rule can match (prefilter). Raises libcst.ParserSyntaxError."""
    active = applicable(rules, text)
    if not active:
        return None
    module = cst.parse_module(text)
    ctx = SourceContext(module, path, text)
    _prime_imports(ctx, list(module.body))
    dispatcher = _Dispatcher(ctx, [rule() for rule in active])
    dispatcher.run(module)
    return SourceRun(module, ctx, dispatcher.hits, dispatcher.errors)


def positions(module: cst.Module) -> Any:
    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


@dataclass(frozen=True)
class _Chunk:
    """A piece of the file parsed on its own: a top-level statement run, function, class or method."""

    first_line: int  # 1-based line of the chunk's first line in the file
    indent: int  # columns removed from every line (methods are parsed dedented)
    text: str


def _line_slice(lines: list[str], start: int, end: int) -> str:
    return "".join(lines[start - 1 : end])


def _dedent(text: str, indent: int) -> str | None:
    """Remove exactly ``indent`` leading columns from every non-blank line; None if a line has less."""
    out = []
    for line in text.splitlines(keepends=True):
        if not line.strip():
            out.append(line.lstrip(" \t") if line.strip(" \t\r\n") == "" else line)
            continue
        if not line[:indent].isspace() or len(line[:indent]) < indent:
            return None
        out.append(line[indent:])
    return "".join(out)


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _chunks(tree: ast.Module, lines: list[str]) -> Iterator[_Chunk]:
    """Top-level defs, each method of a top-level class, and runs of other top-level statements."""
    pending: list[ast.stmt] = []

    def flush() -> Iterator[_Chunk]:
        if pending:
            start, end = _first_line(pending[0]), pending[-1].end_lineno or pending[-1].lineno
            yield _Chunk(start, 0, _line_slice(lines, start, end))
            pending.clear()

    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            yield from flush()
            members = node.body
            start, end = _first_line(node), node.end_lineno or node.lineno
            dedented = [
                (_first_line(m), m.end_lineno or m.lineno, m.col_offset)
                for m in members
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            ]
            texts = [(a, indent, _dedent(_line_slice(lines, a, b), indent)) for a, b, indent in dedented]
            if dedented and all(text is not None for _, _, text in texts):
                for a, indent, text in texts:
                    yield _Chunk(a, indent, text or "")
                # Class-level statements that are not defs (attributes) are checked with the class header.
                first_member = dedented[0][0]
                yield _Chunk(start, 0, _line_slice(lines, start, first_member - 1) + "    pass\n")
            else:
                yield _Chunk(start, 0, _line_slice(lines, start, end))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from flush()
            yield _Chunk(_first_line(node), 0, _line_slice(lines, _first_line(node), node.end_lineno or node.lineno))
        else:
            pending.append(node)
    yield from flush()


def _ast_aliases(tree: ast.Module) -> dict[str, str]:
    """Top-level imports (also inside if/try/with blocks), as SourceContext.record_import would see them."""
    aliases: dict[str, str] = {}
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop(0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".", 1)[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                if alias.name != "*":
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            stack[0:0] = (
                list(node.body)
                + list(getattr(node, "orelse", []))
                + [s for h in getattr(node, "handlers", []) for s in h.body]
            )
    return aliases


def lint_text(text: str, path: str, rules: Sequence[type[Rule]]) -> FileResult:
    """Every unsuppressed hit of ``rules`` in ``text``; a parse failure becomes ``error``.

    Python's own parser (fast, in C) checks the syntax and splits the file into top-level
    functions, class methods and statement runs; only pieces that contain a rule's needles
    are parsed with libcst. Imports come from the whole file, so names resolve as usual.
    """
    import warnings

    result = FileResult(path, lines=text.count("\n") + 1)
    active = applicable(rules, text)
    if not active:
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename=path)
    except SyntaxError as err:
        result.error = f"{path}: cannot parse: {err.msg} (line {err.lineno})"
        return result
    except (ValueError, RecursionError, MemoryError) as err:
        result.error = f"{path}: cannot parse: {type(err).__name__}"
        return result
    file_lines = text.splitlines(keepends=True)
    aliases = _ast_aliases(tree)
    lines = text.splitlines()
    seen: set[tuple[str, int, int, int, int]] = set()
    errors: list[str] = []
    renamed = {local: target for local, target in aliases.items() if local != target.rsplit(".", 1)[-1]}
    for chunk in _chunks(tree, file_lines):
        # An alias (``sdpa`` for scaled_dot_product_attention) counts as the name it stands for.
        expanded = " ".join(target for local, target in renamed.items() if local in chunk.text)
        chunk_rules = applicable(active, f"{chunk.text}\n{expanded}" if expanded else chunk.text)
        if not chunk_rules:
            continue
        try:
            run = _run_chunk(chunk.text, path, chunk_rules, aliases, text)
        except (cst.ParserSyntaxError, RecursionError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            errors.append(f"libcst cannot parse lines {chunk.first_line}+: {reason}")
            continue
        result.parsed = True
        errors += run.errors
        if not run.hits:
            continue
        where = positions(run.module)
        offset = chunk.first_line - 1
        for raw in run.hits:
            code_range: CodeRange = where[raw.hit.node]
            start_line, end_line = code_range.start.line + offset, code_range.end.line + offset
            start_col, end_col = code_range.start.column + chunk.indent, code_range.end.column + chunk.indent
            key = (raw.rule.id, start_line, start_col, end_line, end_col)
            if key in seen or _is_suppressed(raw.rule.id, lines, start_line, end_line):
                continue
            seen.add(key)
            replacement = run.module.code_for_node(raw.hit.replacement) if raw.hit.replacement is not None else None
            result.matches.append(
                SourceMatch(
                    rule=raw.rule.id,
                    name=raw.rule.name,
                    category=raw.rule.category,
                    path=path,
                    line=start_line,
                    column=start_col + 1,
                    end_line=end_line,
                    end_column=end_col + 1,
                    message=raw.hit.message or raw.rule.message,
                    suggestion=raw.rule.suggestion,
                    expression=run.module.code_for_node(raw.hit.node),
                    code=lines[start_line - 1].strip() if start_line <= len(lines) else "",
                    replacement=replacement,
                )
            )
    if errors:
        result.error = f"{path}: " + "; ".join(sorted(set(errors)))
    result.matches.sort(key=lambda m: (m.line, m.column, m.rule))
    return result


def _run_chunk(chunk: str, path: str, rules: Sequence[type[Rule]], aliases: dict[str, str], text: str) -> SourceRun:
    module = cst.parse_module(chunk)
    ctx = SourceContext(module, path, text)
    ctx.aliases.update(aliases)
    dispatcher = _Dispatcher(ctx, [rule() for rule in rules])
    dispatcher.run(module)
    return SourceRun(module, ctx, dispatcher.hits, dispatcher.errors)


def iter_python_files(paths: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """(file, error) for every .py file under ``paths``; a missing path yields an error, not an exception."""
    from pathlib import Path

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(path.rglob("*.py")):
                if not any(part.startswith(".") or part == "__pycache__" for part in file.parts[len(path.parts) :]):
                    yield str(file), None
        elif path.is_file():
            yield str(path), None
        else:
            yield str(path), f"{path}: no such file or folder"


__all__ = [
    "FileResult",
    "child_nodes",
    "SourceContext",
    "SourceMatch",
    "SourceRun",
    "applicable",
    "iter_python_files",
    "lint_text",
    "positions",
    "run_rules",
    "suppressed_ids",
]
