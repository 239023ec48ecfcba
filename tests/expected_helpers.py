"""Synthetic calibration data for the expected-energy tests: energies from a known cost formula."""

from __future__ import annotations

import random

from magneton.expected.calibrate import Calibration, DeviceFingerprint
from magneton.expected.features import NodeFeatures
from magneton.expected.model import Point

FLOPS_PER_S = 20e9
BYTES_PER_S = 5e9
OVERHEAD_S = 5e-6
WATTS = 10.0


def cost_j(flops: int, nbytes: int) -> float:
    return WATTS * (OVERHEAD_S + flops / FLOPS_PER_S + nbytes / BYTES_PER_S)


def features(family: str, op: str, flops: int, nbytes: int, out_numel: int, **layout: int) -> NodeFeatures:
    return NodeFeatures(
        op=op,
        family=family,
        flops=flops,
        bytes=nbytes,
        out_numel=out_numel,
        dtype="float32",
        dtype_width=4,
        noncontiguous_inputs=layout.get("noncontiguous", 0),
        expanded_inputs=layout.get("expanded", 0),
        channels_last_inputs=0,
        device_type="cpu",
        threads=2,
    )


def matmul_features(m: int, k: int, n: int) -> NodeFeatures:
    return features("matmul", "mm", 2 * m * k * n, 4 * (m * k + k * n + m * n), m * n)


def synthetic_points(count: int = 300, seed: int = 0, noise: float = 0.05) -> list[Point]:
    """Matmuls, elementwise ops, norms and copies whose energy follows ``cost_j`` (with multiplicative noise)."""
    rng = random.Random(seed)
    points = []
    dims = [16, 32, 64, 128, 256, 512, 1024]
    for i in range(count):
        kind = i % 4
        if kind == 0:
            m, k, n = rng.choice(dims), rng.choice(dims), rng.choice(dims)
            f = matmul_features(m, k, n)
            group = f"matmul:{m}x{k}x{n}"
        else:
            numel = rng.choice([2**p for p in range(8, 23)])
            kinds = [("unary", "gelu", 1, 1), ("norm", "layer_norm", 7, 1), ("copy", "clone", 0, 1)]
            family, op, flops_per, reads = kinds[kind - 1]
            f = features(family, op, flops_per * numel, 4 * numel * (reads + 1), numel)
            group = f"{family}:{numel}"
        energy = cost_j(f.flops, f.bytes) * rng.uniform(1 - noise, 1 + noise)
        points.append(Point(f, energy, energy / WATTS, group, "sweep"))
    return points


FINGERPRINT = DeviceFingerprint("cpu", "Test CPU", 2, "2.13.0", "estimate@10.0W/core")


def synthetic_calibration(count: int = 300) -> Calibration:
    return Calibration(FINGERPRINT, synthetic_points(count), "quick", "2026-01-01T00:00:00+00:00", {"name": "fake"})
