"""``magneton env``: what this machine offers for energy measurement, and why not when it doesn't."""

from __future__ import annotations

import platform
import sys

from rich.console import Console

from magneton import __version__


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
    console.print(f"cpu      {cpu_model_name()}", highlight=False)
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            console.print(f"cuda:{index}   {torch.cuda.get_device_name(index)}", highlight=False)
    else:
        built = "CUDA build" if torch.version.cuda else "CPU-only build"
        console.print(f"cuda     not available ({built} of torch)", highlight=False)
    if device is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"

    console.print(f"\n[bold]Energy backends[/] (for device {device})")
    for row in backend_availability(BackendOptions(device=device)):
        info = row.info
        if not row.available or info is None:
            state = "[green]available[/]" if row.available else "[red]unavailable[/]"
            console.print(f"  [bold]{row.name}[/]: {state} — {row.detail}", highlight=False)
            continue
        console.print(f"  [bold]{row.name}[/]: [green]available[/], {info.provenance}", highlight=False)
        console.print(f"      sensor        {info.sensor}", highlight=False)
        resolution = format_energy(info.resolution_j) if info.resolution_j is not None else "unknown"
        period = format_time(info.update_period_s) if info.update_period_s is not None else "n/a (read on demand)"
        console.print(f"      resolution    {resolution}", highlight=False)
        console.print(f"      update period {period}", highlight=False)
        console.print(f"      min window    {format_time(info.min_window_s)}", highlight=False)
        if info.formula:
            console.print(f"      formula       {info.formula}", highlight=False)
            for key, value in info.constants.items():
                console.print(f"      {key:<13} {value}", highlight=False)
