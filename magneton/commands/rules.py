"""``magneton rules``: list the rule catalog, or show one rule's documentation and examples."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from magneton.commands import EXIT_ERROR, EXIT_OK

NAME = "rules"
HELP = "list the rule catalog (`magneton rules show MAG101` for one rule)"
DESCRIPTION = "List every rule (id, name, category, kind, fixer), or `show ID` for its documentation and examples."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("words", nargs="*", metavar="show ID", help="`show MAG101` to show one rule")
    parser.add_argument(
        "--rules", action="append", default=[], metavar="DIR", type=Path, help="also load rules from DIR"
    )
    parser.add_argument("--json", action="store_true", help="print the catalog as JSON")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from magneton.rules import load_rules
    from magneton.rules.docs import rule_json, rule_markdown

    console = Console(soft_wrap=True)
    ruleset = load_rules(args.rules)
    if args.words:
        if len(args.words) != 2 or args.words[0] != "show":
            Console(stderr=True).print("usage: magneton rules [show ID]", markup=False)
            return EXIT_ERROR
        rule = ruleset.by_id(args.words[1])
        if args.json:
            sys.stdout.write(json.dumps(rule_json(rule), indent=2) + "\n")
        else:
            from rich.markdown import Markdown

            console.print(Markdown(rule_markdown(rule)))
        return EXIT_OK
    if args.json:
        sys.stdout.write(json.dumps([rule_json(rule) for rule in ruleset.rules], indent=2) + "\n")
        return EXIT_OK
    console.print(
        f"{len(ruleset.rules)} rules ({sum(1 for r in ruleset.rules if r.fixable)} with a fixer)", highlight=False
    )
    for rule in ruleset.rules:
        kind = rule.kind() + ("*" if rule.experimental() else "")
        fixer = "fix" if rule.fixable else ""
        console.print(
            f"{rule.id}  {rule.name:<34} {rule.category:<22} {kind:<14} {fixer:<4} {escape(rule.summary())}",
            highlight=False,
        )
    console.print("* experimental: off unless --experimental or --rule ID. `magneton rules show ID` for details.")
    return EXIT_OK
