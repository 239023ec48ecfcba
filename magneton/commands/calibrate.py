"""``magneton calibrate``: measure this machine's operator costs for the expected-energy regression."""

from __future__ import annotations

import argparse

from magneton.commands import EXIT_ERROR, EXIT_OK, positive_float

NAME = "calibrate"
HELP = "measure a microbenchmark sweep so analyze can predict each operator's expected energy"
DESCRIPTION = (
    "Run a sweep of operators (matmuls, convolutions, elementwise ops, reductions, norms, copies, embedding, "
    "attention) in varied shapes, dtypes and layouts, measured with the chosen backend exactly as analyze measures "
    "operators; cache the measurements per device fingerprint; fit the regression and print its held-out accuracy "
    "on left-out shapes and on the operators of real models (TinyGPT, BERT, GPT-2) that are never trained on."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from magneton.measure.backends import BACKEND_NAMES

    parser.add_argument(
        "--backend",
        choices=[name for name in BACKEND_NAMES if name != "replay"],
        default="auto",
        help="energy source (default: auto, as for analyze)",
    )
    parser.add_argument("--device", default="cpu", help="torch device to calibrate (default cpu)")
    parser.add_argument(
        "--quick", action="store_true", help="a fifth of the sweep, float32 only (< 30 s); no model check"
    )
    parser.add_argument(
        "--no-models", action="store_true", help="skip the real-model accuracy check (TinyGPT, BERT, GPT-2)"
    )
    parser.add_argument(
        "--show", action="store_true", help="print the cached calibration and its accuracy without measuring"
    )
    parser.add_argument(
        "--cpu-watts-per-core",
        type=positive_float,
        metavar="W",
        help="per-core power for the estimate backend (also MAGNETON_CPU_WATTS_PER_CORE)",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from magneton.errors import MagnetonError
    from magneton.expected.calibrate import CalibrationCacheError, calibrate, fingerprint, load_calibration
    from magneton.measure.backends import BackendOptions, create_backend

    console = Console()
    errors = Console(stderr=True)
    try:
        choice = create_backend(
            args.backend, BackendOptions(device=args.device, watts_per_core=args.cpu_watts_per_core)
        )
    except MagnetonError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}")
        return EXIT_ERROR
    backend = choice.backend
    try:
        device_fingerprint = fingerprint(backend, args.device)
        console.print(f"device    {escape(device_fingerprint.describe())}", highlight=False)
        info = backend.info()
        console.print(f"backend   {info.name} ({info.provenance}) — {escape(choice.reason)}", highlight=False)
        previous = None
        try:
            previous = load_calibration(device_fingerprint)
        except CalibrationCacheError as err:
            errors.print(f"[yellow]note:[/] {escape(str(err))}")
        if args.show:
            if previous is None:
                errors.print("no calibration cached for this device; run `magneton calibrate`")
                return EXIT_ERROR
            calibration = previous
        else:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("calibrating", total=1)

                def progress(done: float, total: float, what: str) -> None:
                    bar.update(task, completed=done, total=total, description=escape(what))

                calibration, notes = calibrate(
                    backend,
                    args.device,
                    quick=args.quick,
                    real_models=not (args.quick or args.no_models),
                    progress=progress,
                    previous=previous,
                )
            for note in notes:
                errors.print(f"[yellow]note:[/] {escape(note)}")
        evaluation = calibration.evaluation()
    except MagnetonError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}")
        return EXIT_ERROR
    finally:
        backend.close()
    trainable = sum(1 for p in calibration.points if p.trainable)
    console.print(
        f"sweep     {calibration.sweep}: {trainable} training points "
        f"({evaluation.model.learned_points} learned from analyses), measured {calibration.created_utc}",
        highlight=False,
    )
    console.print(f"model     {escape(evaluation.model.identity)}", highlight=False)
    console.print(f"held-out  {escape(evaluation.shapes.describe())}", highlight=False)
    if evaluation.models.points:
        console.print(f"held-out  {escape(evaluation.models.describe())}  <- the figure that matters", highlight=False)
    else:
        console.print("held-out  real-model nodes: not measured (--quick or --no-models)", highlight=False)
    if info.provenance == "estimated":
        console.print("All energies are ESTIMATED from CPU time, not measured by a sensor.", style="bold yellow")
    console.print(f"cached at {calibration.path}", highlight=False)
    return EXIT_OK
