"""Configuration knobs: when two regions run the same operators at different cost, find the setting to blame.

The costly region is replayed under each candidate knob value, interleaved
with the cheaper region, and a knob *closes the gap* when the costly region
then spends no more than half the threshold above the cheaper one. Knobs that
cannot apply (CUDA-only flags on a CPU, channels_last without a convolution,
an SDPA backend without attention) are skipped and listed as such; the knobs
whose settings already differ between the two sides are tried first.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from magneton.diff.region_replay import Calibrator, RegionProgram, ReplayOptions, measure_program
from magneton.diff.settings import differences

_MATMUL_OPS = ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "einsum", "convolution", "conv", "attention")


@dataclass(frozen=True)
class KnobTrial:
    knob: str
    value: str
    energy_j: float  # costly region per call under this value (median of the trials)
    closes_gap: bool

    def to_json(self) -> dict[str, Any]:
        return {"knob": self.knob, "value": self.value, "energy_j": self.energy_j, "closes_gap": self.closes_gap}


@dataclass(frozen=True)
class KnobDiagnosis:
    costly_side: str
    baseline_costly_j: float
    baseline_cheap_j: float
    trials: tuple[KnobTrial, ...]
    skipped: tuple[tuple[str, str], ...]  # (knob, why it does not apply here)
    provenance: str = "measured"
    threshold: float = 0.10

    @property
    def reproduced(self) -> bool:
        """The gap showed again in the diagnosis' own baseline replays (else no knob can be blamed)."""
        return self.baseline_costly_j > self.baseline_cheap_j * (1 + self.threshold)

    @property
    def closing(self) -> KnobTrial | None:
        if not self.reproduced:
            return None
        closing = [t for t in self.trials if t.closes_gap]
        return min(closing, key=lambda t: t.energy_j) if closing else None

    @property
    def tried(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.knob for t in self.trials))

    def summary(self) -> str:
        best = self.closing
        tried = ", ".join(self.tried) or "none"
        skipped = ", ".join(name for name, _ in self.skipped) or "none"
        if not self.reproduced:
            return (
                f"the gap did not reproduce in the diagnosis replays ({self.baseline_costly_j:.3g} J vs peer "
                f"{self.baseline_cheap_j:.3g} J per call): likely noise, no knob blamed (tried: {tried})"
            )
        if best is None:
            return f"no knob closes the gap (tried: {tried}; not applicable here: {skipped})"
        caveat = " (lower precision: the region's outputs change)" if best.knob == "autocast dtype" else ""
        return (
            f"setting {best.knob} = {best.value}{caveat} on side {self.costly_side} closes the gap: "
            f"{self.baseline_costly_j:.3g} J -> {best.energy_j:.3g} J per call "
            f"(peer {self.baseline_cheap_j:.3g} J; tried: {tried}; not applicable here: {skipped})"
        )

    def to_json(self) -> dict[str, Any]:
        best = self.closing
        return {
            "costly_side": self.costly_side,
            "baseline_costly_j": self.baseline_costly_j,
            "baseline_cheap_j": self.baseline_cheap_j,
            "closing": best.to_json() if best else None,
            "reproduced": self.reproduced,
            "trials": [t.to_json() for t in self.trials],
            "tried": list(self.tried),
            "skipped": [{"knob": k, "reason": r} for k, r in self.skipped],
            "provenance": self.provenance,
        }


Transform = Callable[[dict[Any, Any]], dict[Any, Any]]


@dataclass(frozen=True)
class KnobValue:
    label: str
    context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
    transform: Transform | None = None


@dataclass(frozen=True)
class Knob:
    name: str
    setting: str | None  # the Settings name it corresponds to, if any
    values: list[KnobValue] = field(default_factory=list)
    skip_reason: str | None = None


def _ops(program: RegionProgram) -> list[str]:
    return [program.side.flow.nodes[i].op for i in program.ops]


def _has(program: RegionProgram, words: tuple[str, ...]) -> bool:
    return any(any(word in op for word in words) for op in _ops(program))


def _setting_values(name: str, values: list[Any], program: RegionProgram) -> list[KnobValue]:
    from magneton.diff.settings import applied

    current = program.side.settings.get(name)
    out = []
    for value in values:
        if value == current:
            continue
        settings = program.side.settings.with_value(name, value)
        out.append(KnobValue(str(value), functools.partial(applied, settings)))
    return out


def _channels_last(env: dict[Any, Any]) -> dict[Any, Any]:
    import torch

    return {
        k: v.contiguous(memory_format=torch.channels_last) if isinstance(v, torch.Tensor) and v.dim() == 4 else v
        for k, v in env.items()
    }


def candidate_knobs(program: RegionProgram, device: str) -> list[Knob]:
    """Every knob of the issue's list, with the values to try or the reason it does not apply."""
    import torch

    cuda = device.startswith("cuda")
    knobs: list[Knob] = []
    matmul = _has(program, _MATMUL_OPS)
    knobs.append(
        Knob(
            "float32 matmul precision",
            "torch.get_float32_matmul_precision",
            _setting_values("torch.get_float32_matmul_precision", ["highest", "high", "medium"], program)
            if matmul
            else [],
            None if matmul else "no matmul or convolution in the region",
        )
    )
    if cuda:
        tf32 = program.side.settings.get("torch.backends.cuda.matmul.allow_tf32")
        knobs.append(
            Knob(
                "TF32",
                "torch.backends.cuda.matmul.allow_tf32",
                _setting_values("torch.backends.cuda.matmul.allow_tf32", [not tf32], program),
            )
        )
        conv = _has(program, ("conv",))
        knobs.append(
            Knob(
                "cuDNN benchmark",
                "torch.backends.cudnn.benchmark",
                _setting_values("torch.backends.cudnn.benchmark", [True, False], program) if conv else [],
                None if conv else "no convolution in the region",
            )
        )
    else:
        knobs.append(Knob("TF32", None, [], "CUDA only; the workload runs on the CPU"))
        knobs.append(Knob("cuDNN benchmark", None, [], "CUDA only; the workload runs on the CPU"))
    # Convolutions, pooling, upsampling and norms all have channels_last kernels: any 4-D operand qualifies.
    four_d = any(isinstance(v, torch.Tensor) and v.dim() == 4 for v in program.values.values())
    knobs.append(
        Knob(
            "memory format",
            None,
            [KnobValue("channels_last", transform=_channels_last)] if four_d else [],
            None if four_d else "no 4-D tensor enters the region",
        )
    )
    if _has(program, ("scaled_dot_product",)):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backends = [SDPBackend.MATH, SDPBackend.FLASH_ATTENTION]
        if cuda:
            backends += [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
        knobs.append(
            Knob(
                "SDPA backend",
                None,
                [KnobValue(b.name, functools.partial(sdpa_kernel, [b])) for b in backends],
            )
        )
    else:
        knobs.append(Knob("SDPA backend", None, [], "no scaled_dot_product_attention in the region"))
    if cuda:
        knobs.append(Knob("mkldnn enabled", None, [], "CPU only; the workload runs on CUDA"))
        knobs.append(Knob("intra-op threads", None, [], "CPU only; the workload runs on CUDA"))
    else:
        knobs.append(
            Knob(
                "mkldnn enabled",
                "torch.backends.mkldnn.enabled",
                _setting_values("torch.backends.mkldnn.enabled", [True, False], program),
            )
        )
        cores = os.cpu_count() or 1
        knobs.append(
            Knob(
                "intra-op threads",
                "torch.get_num_threads",
                _setting_values("torch.get_num_threads", sorted({1, max(1, cores // 2), cores}), program),
            )
        )
    autocast_dtypes = [torch.float16, torch.bfloat16] if cuda else [torch.bfloat16]
    device_type = "cuda" if cuda else "cpu"
    knobs.append(
        Knob(
            "autocast dtype",
            None,
            [
                KnobValue(str(d).removeprefix("torch."), functools.partial(torch.autocast, device_type, dtype=d))
                for d in autocast_dtypes
            ]
            if matmul
            else [],
            None if matmul else "no matmul or convolution in the region",
        )
    )
    return knobs


def diagnose(
    costly: RegionProgram,
    cheap: RegionProgram,
    calibrator: Calibrator,
    options: ReplayOptions,
    threshold: float,
    device: str,
    trials: int = 3,
) -> KnobDiagnosis:
    """Replay the costly region under each applicable knob value, interleaved with the cheaper region."""
    import statistics

    differing = {d.name for d in differences(costly.side.settings, cheap.side.settings)}
    knobs = candidate_knobs(costly, device)
    knobs.sort(key=lambda k: 0 if k.setting in differing else 1)  # stable: the order otherwise
    cheap_samples: list[float] = []
    costly_samples: list[float] = []
    knob_samples: dict[tuple[str, str], list[float]] = {}
    runnable = [(knob, value) for knob in knobs for value in knob.values]
    for _ in range(trials):
        cheap_samples.append(measure_program(cheap, calibrator, options)[0])
        costly_samples.append(measure_program(costly, calibrator, options)[0])
        for knob, value in runnable:
            suffix = f".knob[{knob.name}={value.label}]"
            energy_j, _ = measure_program(costly, calibrator, options, value.context, suffix, value.transform)
            knob_samples.setdefault((knob.name, value.label), []).append(energy_j)
    cheap_j = statistics.median(cheap_samples)
    costly_j = statistics.median(costly_samples)
    results = []
    for (name, label), samples in knob_samples.items():
        energy_j = statistics.median(samples)
        results.append(KnobTrial(name, label, energy_j, energy_j <= cheap_j * (1 + threshold / 2)))
    skipped = tuple((k.name, k.skip_reason or "no other value to try") for k in knobs if not k.values)
    return KnobDiagnosis(costly.side.label, costly_j, cheap_j, tuple(results), skipped, threshold=threshold)


__all__ = ["Knob", "KnobDiagnosis", "KnobTrial", "KnobValue", "candidate_knobs", "diagnose"]
