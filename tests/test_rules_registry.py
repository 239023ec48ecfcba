"""Registry invariants of the rule catalog, discovery of user folders, and the source engine's basics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from magneton.findings import CATEGORIES
from magneton.rules import ID_RANGES, RuleError, load_rules
from magneton.rules.source import lint_text

RULES = load_rules().rules


def test_catalog_size_and_fixers() -> None:
    assert len(RULES) >= 30
    assert sum(1 for rule in RULES if rule.fixable) >= 12


def test_ids_and_names_are_unique_and_well_formed() -> None:
    ids = [rule.id for rule in RULES]
    names = [rule.name for rule in RULES]
    assert len(ids) == len(set(ids))
    assert len(names) == len(set(names))
    for rule in RULES:
        assert re.fullmatch(r"MAG[0-9]{3}", rule.id) and rule.id[3] in ID_RANGES
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name), rule.name


@pytest.mark.parametrize("rule", RULES, ids=[rule.id for rule in RULES])
def test_rule_is_documented_and_exemplified(rule: type) -> None:
    assert rule.category in CATEGORIES
    doc = rule.doc()
    assert len(doc) > 200, f"{rule.id}: the docstring must say why the pattern wastes energy"
    assert "https://" in doc, f"{rule.id}: the docstring must cite public references"
    assert rule.message and rule.suggestion
    assert rule.valid_examples(), f"{rule.id}: needs at least one VALID example"
    assert rule.invalid_examples(), f"{rule.id}: needs at least one INVALID example"
    expected_fixes = [e for e in rule.invalid_examples() if e.expected_fix is not None]
    if rule.fixable:
        assert expected_fixes, f"{rule.id}: a fixer needs INVALID examples with expected replacements"
        assert rule.has_source()
    else:
        assert not expected_fixes, f"{rule.id}: expected fixes on a rule without a fixer"


@pytest.mark.parametrize("rule", RULES, ids=[rule.id for rule in RULES])
def test_id_range_matches_detector_kind(rule: type) -> None:
    kind = rule.kind()
    if kind == "source":
        assert rule.has_source() and not rule.has_graph() and not rule.has_runtime()
    elif kind == "graph":
        assert rule.has_graph()
    elif kind == "configuration":
        assert rule.category == "Misconfiguration" or rule.has_source()
    assert rule.experimental() == (kind == "experimental")


def test_experimental_rules_are_off_by_default() -> None:
    ruleset = load_rules()
    default = ruleset.select()
    assert all(not rule.experimental() for rule in default)
    assert any(rule.experimental() for rule in ruleset.select(experimental=True))
    assert ruleset.select(["MAG902"])[0].id == "MAG902"  # named explicitly: runs


def _write_rule(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(body, encoding="utf-8")


USER_RULE = '''
from __future__ import annotations

import libcst as cst

from magneton.rules.base import Invalid, Rule, SourceHit, Valid


class NoEinsum(Rule):
    """Team rule: no einsum in hot paths (example of a user rule folder). https://example.org/why"""

    id = "{id}"
    name = "no-einsum-{id}"
    category = "API misuse"
    message = "einsum in a hot path"
    suggestion = "matmul"
    node_types = (cst.Call,)
    VALID = (Valid("import torch\\ny = x @ w\\n"),)
    INVALID = (Invalid("import torch\\ny = torch.einsum('ij,jk->ik', x, w)\\n"),)

    def check_source(self, node, ctx):
        if ctx.is_call(node, "torch.einsum"):
            yield SourceHit(node)
'''


def test_user_rule_folder_is_discovered(tmp_path: Path) -> None:
    _write_rule(tmp_path, "no_einsum.py", USER_RULE.format(id="MAG150"))
    ruleset = load_rules([tmp_path])
    rule = ruleset.by_id("MAG150")
    result = lint_text("import torch as t\ny = t.einsum('ij,jk->ik', a, b)\n", "x.py", [rule])
    assert [m.rule for m in result.matches] == ["MAG150"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.py": USER_RULE.format(id="MAG101")}, "already used"),
        ({"a.py": USER_RULE.format(id="MAG7"), "b.py": ""}, "published range"),
        ({"a.py": "import nonexistent_module_xyz\n"}, "import failed"),
        ({"a.py": USER_RULE.format(id="MAG151") + "\n\nclass Other(NoEinsum):\n    id = 'MAG152'\n"}, "exactly one"),
    ],
)
def test_broken_user_rules_name_the_file(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, body in files.items():
        _write_rule(tmp_path, name, body)
    with pytest.raises(RuleError, match=message):
        load_rules([tmp_path])


def test_missing_rule_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="not a folder"):
        load_rules([tmp_path / "nope"])


@pytest.mark.parametrize(
    "code",
    [
        "import torch as t\ny = t.log(t.softmax(x, -1))\n",
        "from torch import nn\ny = torch_log = None\nimport torch\ny = torch.log(nn.functional.softmax(x, -1))\n",
        "from torch import log, softmax\ny = log(softmax(x, -1))\n",
        "import torch.nn.functional as F\nimport torch\ny = torch.log(F.softmax(x, -1))\n",
    ],
)
def test_qualified_names_resolve_through_aliases(code: str) -> None:
    rule = load_rules().by_id("MAG115")
    assert [m.rule for m in lint_text(code, "x.py", [rule]).matches] == ["MAG115"]


def test_unimported_names_do_not_match() -> None:
    # Why silent: `log` and `softmax` here are the file's own functions, not torch's.
    rule = load_rules().by_id("MAG115")
    code = "import torch\n\ndef log(x): ...\ndef softmax(x, d): ...\ny = log(softmax(x, -1))\n"
    assert lint_text(code, "x.py", [rule]).matches == []


def test_suppression_comments() -> None:
    rules = [load_rules().by_id("MAG117"), load_rules().by_id("MAG115")]
    code = (
        "import torch\n"
        "a = (x != 0).sum()  # magneton: ignore[MAG117]\n"
        "b = (x != 0).sum()  # magneton: ignore[MAG115]\n"
        "c = torch.log(torch.softmax((x != 0).sum(), -1))  # magneton: ignore\n"
        "# magneton: ignore[MAG117]\n"
        "d = (x != 0).sum()\n"
    )
    matches = lint_text(code, "x.py", rules).matches
    assert [(m.rule, m.line) for m in matches] == [("MAG117", 3)]


def test_prefilter_skips_files_that_cannot_match() -> None:
    result = lint_text("def f(:\n  print('no tensors here')\n", "x.py", list(RULES))
    assert not result.parsed and result.error is None and not result.matches
    broken = lint_text("import torch\nn = (x != 0).sum()\ndef f(:\n", "y.py", list(RULES))
    assert broken.error is not None and "cannot parse" in broken.error
