"""``magneton env``: what this machine offers for energy measurement, and why not when it doesn't."""

from __future__ import annotations

import platform
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from magneton import __version__


def _indented(console: Console, text: Text, indent: int = 2) -> None:
    """Print ``text`` indented; wrapped lines keep the indent."""
    grid = Table.grid()
    grid.add_column(width=indent)
    grid.add_column(overflow="fold")
    grid.add_row("", text)
    console.print(grid)


def render_env(console: Console, device: str | None = None) -> None:
    import torch

    from magneton.measure.backends import BackendOptions, backend_availability
    from magneton.measure.backends.cpu_power import cpu_model_name
    from magneton.report.terminal import format_energy, format_time

    console.print(f"magneton {__version__}", highlight=False)
    console.print(
        f"python   {sys.version.split()[0]} ({platform.python_implementation()}, {platform.platform()})",
        highlight=False,
    )
    console.print(f"torch    {torch.__version__}, {torch.get_num_threads()} CPU threads", highlight=False)
    console.print(Text(f"cpu      {cpu_model_name()}"))
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            console.print(Text(f"cuda:{index}   {torch.cuda.get_device_name(index)}"))
    else:
        built = "CUDA build" if torch.version.cuda else "CPU-only build"
        console.print(f"cuda     not available ({built} of torch)", highlight=False)
    if device is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"

    console.print(Text.assemble("\n", ("Energy backends", "bold"), f" (for device {device})"))
    for row in backend_availability(BackendOptions(device=device)):
        info = row.info
        # OS errors and sensor names are foreign text: Text objects, never markup.
        if not row.available or info is None:
            state = ("available", "green") if row.available else ("unavailable", "red")
            _indented(console, Text.assemble((row.name, "bold"), ": ", state, f" — {row.detail}"))
            continue
        _indented(console, Text.assemble((row.name, "bold"), ": ", ("available", "green"), f", {info.provenance}"))
        details = Table.grid(padding=(0, 1))
        details.add_column(width=5)  # indent: continuation lines wrap under the value, not under the label
        details.add_column(width=13, no_wrap=True)
        details.add_column(overflow="fold")
        resolution = format_energy(info.resolution_j) if info.resolution_j is not None else "unknown"
        period = format_time(info.update_period_s) if info.update_period_s is not None else "n/a (read on demand)"
        details.add_row("", "sensor", Text(info.sensor))
        details.add_row("", "resolution", resolution)
        details.add_row("", "update period", period)
        details.add_row("", "min window", format_time(info.min_window_s))
        if info.formula:
            details.add_row("", "formula", Text(info.formula))
        if info.constants:
            # Keys as long as watts_per_core_origin get their own aligned column instead of breaking the one above.
            constants = Table.grid(padding=(0, 1))
            constants.add_column(no_wrap=True)
            constants.add_column(no_wrap=True)
            constants.add_column(overflow="fold")
            for key, value in info.constants.items():
                constants.add_row(Text(str(key)), "=", Text(str(value)))
            details.add_row("", "constants", constants)
        console.print(details)
