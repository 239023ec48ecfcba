"""Benchmark for `magneton diff` matching (run with `just bench`). Prints figures; asserts nothing.

GPT-2 from transformers (default width 768, random weights, batch 1 x 128 tokens), eager
attention vs sdpa, 12 layers and 48 layers. Reported:
- matching wall time (pairing + cut points + recursive refinement), excluding the two
  captures with their fingerprinting run and excluding every energy pass;
- the share of each side's operators inside matched regions, the number of regions;
- whether each layer's attention is its own region (the region holding side B's
  scaled_dot_product_attention of layer i holds only layer i's attention ops on both sides).

Matching is pure Python on a few thousand small records: light enough on the CPU to
measure on a busy machine (the captures are not, and are reported only for context).
``--quick`` runs 2 and 4 layers.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from magneton.capture import capture
from magneton.diff.fingerprint import FingerprintRecorder
from magneton.diff.flow import Flow, build_flow
from magneton.diff.match import Match, match_flows
from magneton.diff.pairing import pair_values
from magneton.workload import Workload


def side(impl: str, layers: int) -> tuple[Flow, float]:
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = GPT2Config(n_layer=layers, use_cache=False)
        config._attn_implementation = impl
        model = GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, config.vocab_size, (1, 128), generator=torch.Generator().manual_seed(1))
    recorder = FingerprintRecorder()
    start = time.perf_counter()
    graph = capture(Workload(model, (ids,)), observer=recorder)
    return build_flow(graph, recorder.fingerprints), time.perf_counter() - start


def match_once(a: Flow, b: Flow) -> tuple[Match, float]:
    start = time.perf_counter()
    match = match_flows(a, b, pair_values(a, b))
    return match, time.perf_counter() - start


def attention_isolated(a: Flow, b: Flow, match: Match, layers: int) -> list[bool]:
    isolated = []
    for layer in range(layers):
        prefix = f"transformer.h.{layer}.attn"
        sdpa = [
            j
            for j in range(len(b))
            if "scaled_dot_product" in b.nodes[j].op and b.nodes[j].module_path.startswith(prefix)
        ]
        region = next((r for r in match.regions if sdpa and sdpa[0] in r.b_ops), None)
        if region is None or not region.matched:
            isolated.append(False)
            continue
        a_costing = [a.nodes[i] for i in region.a_ops if not a.nodes[i].zero_cost]
        b_costing = [b.nodes[j] for j in region.b_ops if not b.nodes[j].zero_cost]
        isolated.append(
            all(n.module_path.startswith(prefix) for n in a_costing + b_costing)
            and any("softmax" in n.op for n in a_costing)
            and len(b_costing) == 1
        )
    return isolated


def run(layers: int, repeats: int = 5) -> None:
    a, capture_a = side("eager", layers)
    b, capture_b = side("sdpa", layers)
    times = []
    for _ in range(repeats):
        match, seconds = match_once(a, b)
        times.append(seconds)
    in_a = sum(len(r.a_ops) for r in match.matched)
    in_b = sum(len(r.b_ops) for r in match.matched)
    isolated = attention_isolated(a, b, match, layers)
    largest = max(max(len(r.a_ops), len(r.b_ops)) for r in match.regions)
    print(f"GPT-2 {layers} layers, eager ({len(a)} ops) vs sdpa ({len(b)} ops):")
    print(f"  matching time: median {statistics.median(times):.4f} s, min {min(times):.4f} s over {repeats} runs")
    print(f"  captures with fingerprints (context, not matching): {capture_a:.1f} s + {capture_b:.1f} s")
    print(f"  ops in matched regions: A {in_a}/{len(a)} = {in_a / len(a):.1%}, B {in_b}/{len(b)} = {in_b / len(b):.1%}")
    regions = f"{len(match.regions)} ({len(match.matched)} matched)"
    print(f"  regions: {regions}, largest {largest} ops, pairs {len(match.pairing.pairs)}")
    print(f"  attention its own region: {sum(isolated)}/{layers} layers")


def main() -> None:
    quick = "--quick" in sys.argv
    print("bench_diff (CPU; matching is light enough to time on a busy machine)")
    for layers in (2, 4) if quick else (12, 48):
        run(layers)


if __name__ == "__main__":
    main()
