"""Reports built by hand for the HTML and trace tests: every optional part of the contract, and hostile text.

They follow the ``magneton.report/1`` contract (DESIGN.md): findings, diff ``regions`` with both sides'
nodes, node ``flops``/``bytes``/``expected_energy_j``/``phase``, and a contention block, so the renderer is
tested on what the detectors will produce before they exist.
"""

from __future__ import annotations

import copy
from typing import Any

HOSTILE_CODE = 'x = "</script><script>alert(1)</script><!-- \u2028 & <b>bold</b>"'
FILE = "/home/user/project/model.py"
LIB = "/venv/lib/python3.11/site-packages/transformers/models/gpt2/modeling_gpt2.py"


def _tensor(shape: list[int], contiguous: bool = True) -> dict[str, Any]:
    stride = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        stride[i] = stride[i + 1] * shape[i + 1]
    if not contiguous:
        stride = list(reversed(stride))
    return {"shape": shape, "dtype": "float32", "stride": stride, "contiguous": contiguous, "device": "cpu"}


def _node(
    node_id: str,
    op: str,
    energy_j: float,
    module_path: str,
    source: tuple[str, int, str, str] | None,
    **extra: Any,
) -> dict[str, Any]:
    node = {
        "id": node_id,
        "op": op,
        "energy_j": energy_j,
        "time_s": energy_j / 20.0,
        "expected_energy_j": None,
        "energy_ci_j": [energy_j * 0.95, energy_j * 1.05],
        "noisy": False,
        "share": 0.0,
        "module_path": module_path,
        "module_type": "Linear",
        "inputs": [_tensor([4, 128, 768]), _tensor([768, 768], contiguous=False)],
        "outputs": [_tensor([4, 128, 768])],
        "source": None if source is None else dict(zip(("file", "line", "function", "code"), source, strict=True)),
        "zero_cost_reason": None,
    }
    node.update(extra)
    return node


def sample_report(layers: int = 3, phases: bool = False) -> dict[str, Any]:
    """A GPT-2-like report: ``layers`` blocks of attention and MLP operators, one finding of each kind."""
    nodes: list[dict[str, Any]] = []
    counter = 0

    def add(*args: Any, **extra: Any) -> None:
        nonlocal counter
        nodes.append(_node(f"n{counter}", *args, **extra))
        counter += 1

    add("aten.embedding.default", 0.002, "wte", (FILE, 10, "forward", "x = self.wte(ids)"))
    for layer in range(layers):
        attn = (LIB, 230, "forward", "query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)")
        add("aten.addmm.default", 0.010, f"h.{layer}.attn.c_attn", attn, flops=2 * 512 * 768 * 2304, bytes=9_000_000)
        add("aten.view.default", 0.0, f"h.{layer}.attn", attn, zero_cost_reason="view: output aliases an input")
        add(
            "aten.softmax.int",
            0.006,
            f"h.{layer}.attn",
            (LIB, 190, "_attn", "attn_weights = nn.functional.softmax(attn_weights, dim=-1)"),
            expected_energy_j=0.002,
            bytes=12_000_000,
        )
        add(
            "aten.mul.Tensor",
            0.003,
            f"h.{layer}.mlp.act",
            (FILE, 42, "forward", HOSTILE_CODE),
            expected_energy_j=0.003,
            flops=393216,
        )
        add("aten.addmm.default", 0.020, f"h.{layer}.mlp.c_fc", (LIB, 300, "forward", "h = self.c_fc(x)"))
    add("aten.linear.default", 0.015, "lm_head", (FILE, 80, "forward", "return self.lm_head(x)"))
    add("aten.add.Tensor", 0.001, "", None)
    total = sum(n["energy_j"] for n in nodes)
    for node in nodes:
        node["share"] = node["energy_j"] / total
    if phases:
        for index, node in enumerate(nodes):
            node["phase"] = ("forward", "backward", "optimizer")[index % 3]
    return {
        "schema": "magneton.report/1",
        "magneton_version": "0.1.0",
        "target": "examples/<gpt2>.py:workload",
        "device": "cpu",
        "device_description": "AMD EPYC (x86_64)",
        "torch_version": "2.13.0",
        "threads": 2,
        "backend": {
            "name": "estimate",
            "provenance": "estimated",
            "sensor": "none: process CPU time x per-core power",
            "formula": "energy_j = process_cpu_time_s * watts_per_core",
            "constants": {"watts_per_core": 7.18},
            "reason": "auto: no readable sensor",
            "warnings": ["rapl unavailable: <no powercap>"],
        },
        "capture": {"method": "torch.export", "notes": ["note with <tags> & ampersands"]},
        "measurement_notes": [],
        "contention": {"warning": "another process used 40% of the CPUs", "run_delay_share": 0.4},
        "energy_scope": "one forward pass of the workload",
        "total_energy_j": total * 1.1,
        "total_energy_ci_j": [total * 1.05, total * 1.15],
        "total_time_s": total / 20,
        "active_energy_j": total,
        "idle_power_w": 0.06,
        "node_energy_sum_j": total,
        "coverage": 1 / 1.1,
        "nodes": nodes,
        "findings": [
            {
                "kind": "rule",
                "rule": "MAG101",
                "category": "API misuse",
                "title": "hand-written GELU launches five kernels <where one does>",
                "energy_j": 0.009,
                "excess_energy_j": 0.007,
                "share": 0.007 / total,
                "source": {"file": FILE, "line": 42, "code": HOSTILE_CODE, "function": "forward"},
                "nodes": ["n4"],
                "suggestion": "use torch.nn.functional.gelu(x, approximate='tanh')",
                "explanation": "5 elementwise ops read and write the activation 5 times",
                "energy_provenance": "estimated",
                "excess_provenance": "estimated",
                "fix": "--- a/model.py\n+++ b/model.py\n@@ -42 +42 @@\n-    " + HOSTILE_CODE + "\n+    x = gelu(x)\n",
                "details": {"verification": {"saving_j": 0.0068, "saving_share": 0.05, "max_output_difference": 1e-6}},
            },
            {
                "kind": "anomaly",
                "rule": None,
                "category": None,
                "title": "softmax costs 3.0x its expected energy",
                "energy_j": 0.006,
                "excess_energy_j": 0.004,
                "share": 0.004 / total,
                "source": {"file": LIB, "line": 190, "code": "attn_weights = softmax(attn_weights)"},
                "nodes": ["n3"],
                "suggestion": "",
                "explanation": "measured 6 mJ, predicted 2 mJ (held-out error 15%)",
                "energy_provenance": "estimated",
                "excess_provenance": "predicted",
            },
        ],
    }


def sample_diff_report() -> dict[str, Any]:
    """A diff of two programs: both sides' nodes, three regions (one per verdict), one diff finding."""
    side_a = sample_report(layers=2)
    side_b = copy.deepcopy(side_a)
    side_b["target"] = "examples/fused.py:workload"
    for node in side_b["nodes"]:
        node["id"] = "b" + node["id"]
        if node["op"] == "aten.mul.Tensor":
            node["op"], node["energy_j"] = "aten.gelu.default", 0.001
    regions = [
        {"a_nodes": ["n4", "n9"], "b_nodes": ["bn4", "bn9"], "a_energy_j": 0.006, "b_energy_j": 0.002, "ratio": 3.0,
         "verdict": "waste", "a_energy_ci_j": [0.0058, 0.0062], "b_energy_ci_j": [0.0019, 0.0021]},
        {"a_nodes": ["n3"], "b_nodes": ["bn3"], "a_energy_j": 0.006, "b_energy_j": 0.0055, "ratio": 1.09,
         "verdict": "same", "ratio_ci": [0.98, 1.2], "a_time_s": 0.001, "b_time_s": 0.0009},
        {"a_nodes": ["n1"], "b_nodes": ["bn1"], "a_energy_j": 0.010, "b_energy_j": 0.012, "ratio": 0.83,
         "verdict": "tradeoff"},
    ]  # fmt: skip
    finding = {
        "kind": "diff",
        "rule": None,
        "category": "API misuse",
        "title": "side A runs 5 ops (mul, pow, add, tanh, ...) where side B runs one gelu",
        "energy_j": 0.006,
        "excess_energy_j": 0.004,
        "share": 0.004 / side_a["total_energy_j"],
        "source": {"file": FILE, "line": 42, "code": HOSTILE_CODE},
        "peer_source": {"file": FILE, "line": 43, "code": "x = gelu(x)"},
        "nodes": ["n4", "n9"],
        "suggestion": "call torch.nn.functional.gelu",
        "explanation": "",
        "energy_provenance": "estimated",
        "excess_provenance": "estimated",
    }
    return {
        "schema": "magneton.report/1",
        "magneton_version": "0.1.0",
        "targets": [side_a["target"], side_b["target"]],
        "device": "cpu",
        "backend": side_a["backend"],
        "sides": [side_a, side_b],
        "regions": regions,
        "findings": [finding],
    }


def sample_engine_diff_report() -> dict[str, Any]:
    """A diff as the diff engine writes it: no top-level nodes; regions carry each side's per-operator split,
    and a ``diff`` block holds both sides' totals, the settings that differ and the unmatched operators."""
    report = sample_diff_report()
    sides = report.pop("sides")
    by_id = {n["id"]: n for side in sides for n in side["nodes"]}

    def split(ids: list[str]) -> list[dict[str, Any]]:
        return [
            {"id": i, "op": by_id[i]["op"], "energy_j": by_id[i]["energy_j"], "zero_cost": False,
             "source": by_id[i]["source"]}
            for i in ids
        ]  # fmt: skip

    for index, region in enumerate(report["regions"]):
        region.update(id=index, part="program", a_split=split(region["a_nodes"]), b_split=split(region["b_nodes"]))
        region["reason"] = "side A runs <5 ops> where B runs one"
    report["regions"][1]["knobs"] = {"float32_matmul_precision": "high", "closes_gap_share": 0.9}
    report["nodes"] = []
    report["total_energy_j"] = sides[0]["total_energy_j"]
    report["diff"] = {
        "sides": [
            {"label": label, "target": side["target"], "total_energy_j": side["total_energy_j"],
             "total_energy_ci_j": side["total_energy_ci_j"], "total_time_s": side["total_time_s"],
             "region_energy_sum_j": side["total_energy_j"], "region_coverage": 0.97, "ops": 11,
             "ops_in_matched_regions": 10, "matched_share": 10 / 11, "capture": {"method": "torch.export"}}
            for label, side in zip("AB", sides, strict=True)
        ],
        "threshold": 0.1,
        "setting_differences": [{"name": "torch.backends.<mkldnn>.enabled", "a": True, "b": False}],
        "matching_time_s": 0.01,
        "pairs": 12,
        "unmatched": [{"part": "program", "a_nodes": ["n0"], "b_nodes": [], "a_ops": ["embedding"], "b_ops": [],
                       "a_energy_j": 0.002, "b_energy_j": 0.0}],
    }  # fmt: skip
    return report
