"""Benchmark of expected energy (run with `just bench`). Prints figures; asserts nothing.

1. The regression's held-out accuracy: MdAPE and R² on shapes left out of the sweep, and on the
   measured nodes of real models never trained on (TinyGPT, transformers BERT and GPT-2 from configs).
2. Planted anomalies (tests/bench/planted.py, eight of them): how many are flagged at the right line.
3. False anomalies on clean models: TinyGPT, BERT and a small diffusers UNet.

Calibration is measured into a fresh cache folder, so figures never depend on an old cache.
``--quick``: the quick sweep, no real-model check, four planted anomalies, TinyGPT only (a smoke run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLANTED = HERE / "planted.py"


def _marker_line(name: str) -> int:
    for number, text in enumerate(PLANTED.read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# planted: {name}"):
            return number
    raise LookupError(name)


def _clean_models() -> dict[str, object]:
    import torch

    from magneton.examples.tiny_gpt import build_tiny_gpt
    from magneton.workload import Workload

    def tiny_gpt() -> Workload:
        model, args = build_tiny_gpt()
        return Workload(model, args)

    def bert() -> Workload:
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=8192, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024
        )
        torch.manual_seed(0)
        ids = torch.randint(0, config.vocab_size, (4, 128), generator=torch.Generator().manual_seed(1))
        return Workload(BertModel(config).eval(), (ids,))

    def unet() -> Workload:
        from diffusers import UNet2DModel

        torch.manual_seed(0)
        model = UNet2DModel(
            sample_size=32,
            in_channels=3,
            out_channels=3,
            layers_per_block=1,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=8,
        ).eval()
        sample = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        return Workload(model, (sample, torch.tensor([10])), {"return_dict": False})

    return {"TinyGPT": tiny_gpt, "BERT": bert, "UNet": unet}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: quick sweep, fewer cases")
    parser.add_argument("--trials", type=int, default=5, help="trials per operator in the analyses (default 5)")
    parser.add_argument(
        "--reuse-cache",
        action="store_true",
        help="use the calibration already cached for this machine in $MAGNETON_CACHE_DIR instead of measuring one",
    )
    args = parser.parse_args()
    os.environ.setdefault("MAGNETON_CACHE_DIR", tempfile.mkdtemp(prefix="magneton-bench-expected-"))
    sys.path.insert(0, str(HERE))

    from planted import WORKLOADS

    from magneton.expected.calibrate import calibrate, fingerprint, load_calibration
    from magneton.measure.backends import BackendOptions, create_backend
    from magneton.pipeline import AnalyzeOptions, analyze_workload
    from magneton.workload import Workload

    backend = create_backend("estimate", BackendOptions()).backend
    print("Expected-energy benchmark (estimate backend: energies are CPU time x watts per core)")
    print("NOTE: figures from a shared or busy machine are distorted; compare runs on a quiet one.\n")
    started = time.perf_counter()
    cached = load_calibration(fingerprint(backend, "cpu")) if args.reuse_cache else None
    if cached is not None:
        calibration, notes = cached, [f"reused the calibration measured {cached.created_utc} ({cached.path})"]
    else:
        calibration, notes = calibrate(backend, "cpu", quick=args.quick, real_models=not args.quick)
    backend.close()
    sweep_s = time.perf_counter() - started
    evaluation = calibration.evaluation()
    print(f"calibration: {calibration.sweep} sweep + real-model check in {sweep_s:.0f} s wall")
    for note in notes:
        print(f"  note: {note}")
    print(f"  {evaluation.shapes.describe()}")
    print(f"  {evaluation.models.describe()}   (target: MdAPE <= 15%)")
    by_model: dict[str, list[tuple[float, float]]] = {}
    real = [p for p in calibration.points if not p.trainable]
    for point, predicted in zip(real, evaluation.model.predict_j([p.features for p in real]), strict=True):
        by_model.setdefault(point.origin, []).append((predicted, point.energy_j))
    for origin, pairs in sorted(by_model.items()):
        from magneton.expected.model import accuracy

        figure = accuracy([p for p, _ in pairs], [m for _, m in pairs], origin)
        print(f"    {figure.describe()}")

    options = AnalyzeOptions.from_flat(backend="estimate", trials=args.trials, min_trials=3, expected=True)
    names = list(WORKLOADS)[:4] if args.quick else list(WORKLOADS)
    flagged = 0
    print(f"\nplanted anomalies ({len(names)}):")
    for name in names:
        model, inputs = WORKLOADS[name]()
        report = analyze_workload(Workload(model, inputs), f"planted:{name}", options)
        line = _marker_line(name)
        anomalies = [f for f in report.findings if f.kind == "anomaly" and "reason" in f.details]
        hit = [f for f in anomalies if f.source is not None and f.source.line == line]
        flagged += bool(hit)
        detail = hit[0].title + f" ({hit[0].share:.0%} of energy)" if hit else "not flagged"
        others = len(anomalies) - len(hit)
        print(
            f"  {'OK  ' if hit else 'MISS'} {name:22s} line {line}: {detail}"
            + (f"; {others} elsewhere" if others else "")
        )
    print(f"  flagged at the right line: {flagged}/{len(names)}")

    models = _clean_models()
    print("\nfalse anomalies on clean models:")
    for name, build in list(models.items())[: 1 if args.quick else None]:
        try:
            workload = build()  # type: ignore[operator]
        except ImportError as err:
            print(f"  {name}: skipped ({err})")
            continue
        report = analyze_workload(workload, name, options)
        # This detector's findings only (other detectors also emit kind "anomaly", e.g. framework overhead).
        anomalies = [f for f in report.findings if f.kind == "anomaly" and "reason" in f.details]
        big = [f for f in anomalies if f.share >= 0.05]
        print(f"  {name}: {len(anomalies)} anomalies, {len(big)} holding >= 5% of the energy")
        for finding in anomalies:
            where = f"{Path(finding.source.file).name}:{finding.source.line}" if finding.source else "?"
            print(f"    {finding.title} at {where}: {finding.share:.1%}")
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
