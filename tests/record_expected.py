"""Record the expected-energy regression's real data for tests/test_expected_recorded.py (`just record-expected`).

Runs the default calibration (sweep and real-model check) and one analysis of the bundled
TinyGPT on this machine, with the estimate backend, and writes both to
``tests/data/expected/recorded-cpu.json``. Record on a quiet machine: the test then checks,
deterministically, the regression's accuracy on these measurements (it fails when a change makes
it worse) and that the clean TinyGPT raises no anomaly. Never edit the file by hand.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "expected" / "recorded-cpu.json"


def main() -> int:
    os.environ["MAGNETON_CACHE_DIR"] = tempfile.mkdtemp(prefix="magneton-record-")
    import torch

    import magneton
    from magneton.examples.tiny_gpt import build_tiny_gpt
    from magneton.expected.calibrate import calibrate
    from magneton.measure.backends.estimate import EstimateBackend

    calibration, notes = calibrate(EstimateBackend())
    for note in notes:
        print(note, file=sys.stderr)
    model, args = build_tiny_gpt()
    report = magneton.analyze(model, args, backend="estimate", expected=False, target="tinygpt")
    record = {
        "recorded_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}",
        "calibration": calibration.to_json(),
        "tinygpt": {
            "total_energy_j": report.total_energy_j,
            "nodes": {n.id: [n.energy_j, n.time_s, n.energy_ci_j[0]] for n in report.nodes if n.energy_j > 0},
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=None, separators=(",", ":")) + "\n")
    evaluation = calibration.evaluation()
    print(f"wrote {OUT}: {evaluation.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
