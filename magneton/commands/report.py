"""``magneton report``: render a saved JSON report in another format."""

from __future__ import annotations

import argparse
from pathlib import Path

from magneton.commands import EXIT_ERROR, EXIT_OK
from magneton.errors import MagnetonError

NAME = "report"
HELP = "render a saved JSON report (html)"
DESCRIPTION = (
    "Render a magneton.report/1 JSON file written by --json. "
    "`magneton report html REPORT.json` writes a self-contained HTML page that opens offline."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    html = formats.add_parser(
        "html", help="a self-contained HTML report (no network needed to view it)", description=DESCRIPTION
    )
    html.add_argument("report", type=Path, metavar="REPORT.json", help="a report written by --json")
    html.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="where to write the HTML (default: REPORT.html beside it)"
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from magneton.report.html import write_html
    from magneton.report.load import load_report

    console, errors = Console(), Console(stderr=True)
    output = args.output or args.report.with_suffix(".html")
    try:
        write_html(output, load_report(args.report))
    except MagnetonError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}")
        return EXIT_ERROR
    except OSError as err:
        errors.print(f"[bold red]error:[/] cannot write {escape(str(output))}: {escape(str(err))}")
        return EXIT_ERROR
    console.print(f"HTML report written to {output}", highlight=False)
    return EXIT_OK
