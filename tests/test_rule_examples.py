"""Every VALID and INVALID example embedded in a rule is a test (Fixit-style), found by walking the catalog."""

from __future__ import annotations

import pytest

from magneton.rules import load_rules
from magneton.rules.testing import ExampleCase, check_example, example_cases

CASES = list(example_cases(load_rules()))


@pytest.mark.parametrize("case", CASES, ids=[case.test_id for case in CASES])
def test_rule_example(case: ExampleCase) -> None:
    check_example(case)
