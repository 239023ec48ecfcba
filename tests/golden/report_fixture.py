"""A fixed report for the terminal's golden-output tests: a GPT-2-like model, 4 layers, awkward text.

The golden files beside this module are generated from it by ``just golden``; never edit them by hand.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from magneton.provenance import EnergyProvenance
from magneton.report.build import rollup_by_line, rollup_by_op
from magneton.report.model import BackendSummary, CaptureSummary, Node, NodeSource, Report, Rollups, TensorInfo

GOLDEN_DIR = Path(__file__).resolve().parent
WIDTHS = (80, 160)
HF = "/opt/venv/lib/python3.11/site-packages/transformers/models/gpt2/modeling_gpt2.py"
USER = "/home/someone/projects/a-rather-long-project-name/src/model_with_long_name.py"
PROVENANCE = EnergyProvenance.estimated(
    "energy_j = process_cpu_time_s * watts_per_core",
    {"watts_per_core": 4.2, "watts_per_core_origin": "table median (CPU not listed)", "cpu_model": "Some CPU"},
)


def _tensor(*shape: int) -> TensorInfo:
    stride = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        stride[i] = stride[i + 1] * shape[i + 1]
    return TensorInfo(shape=list(shape), dtype="float32", stride=stride, contiguous=True, device="cpu")


def golden_report() -> Report:
    nodes: list[Node] = []
    addmm_code = "x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)"
    sdpa_code = (
        "attn_output = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask[:, None])"
    )
    gelu_code = "hidden_states = self.act(self.c_fc(hidden_states))  # [/bold] not markup"
    layer_ops = [
        (
            "aten.addmm.default",
            HF,
            312,
            addmm_code,
            "c_attn",
            9e-4,
        ),
        (
            "aten._scaled_dot_product_flash_attention_for_cpu.default",
            HF,
            401,
            sdpa_code,
            "attn",
            1.4e-3,
        ),
        (
            "aten.gelu.default",
            HF,
            640,
            gelu_code,
            "mlp.act",
            2e-4,
        ),
        ("aten.native_layer_norm.default", HF, 702, "hidden_states = self.ln_1(hidden_states)", "ln_1", 1.1e-4),
    ]
    for layer in range(4):
        for op, file, line, code, module, energy in layer_ops:
            nodes.append(
                Node(
                    id=f"{op.split('.')[1]}_{layer}",
                    op=op,
                    energy_j=energy * (1 + 0.01 * layer),
                    time_s=energy / 50,
                    expected_energy_j=None,
                    source=NodeSource(file=file, line=line, function="forward", code=code),
                    provenance=PROVENANCE,
                    energy_ci_j=(energy * 0.9, energy * 1.4 if module == "mlp.act" else energy * 1.1),
                    ci_confidence=0.9375,
                    noisy=module == "mlp.act",
                    module_path=f"transformer.h.{layer}.{module}",
                    module_type="GPT2Attention" if "attn" in module else "GPT2MLP",
                    inputs=[_tensor(4, 128, 256)],
                    outputs=[_tensor(4, 128, 256)],
                )
            )
    nodes.append(
        Node(
            id="index",
            op="aten.index.Tensor",
            energy_j=3e-4,
            time_s=1e-5,
            expected_energy_j=None,
            source=NodeSource(file=USER, line=1234, function="forward", code="x = self.layers[i](x)[mask]"),
            provenance=PROVENANCE,
            module_path="",
            module_type="Wrapper[Model]",
        )
    )
    nodes.append(
        Node(
            id="view",
            op="aten.view.default",
            energy_j=0.0,
            time_s=0.0,
            expected_energy_j=None,
            source=NodeSource(file=USER, line=12, function="forward", code="x = x.view(4, -1)"),
            provenance=PROVENANCE,
            zero_cost_reason="view",
        )
    )
    total = sum(n.energy_j for n in nodes)
    nodes = [
        n.__class__(**{**{f: getattr(n, f) for f in n.__struct_fields__}, "share": n.energy_j / total}) for n in nodes
    ]
    return Report(
        target="examples/gpt2.py:workload[small]",
        device="cpu",
        device_description="Some CPU (x86_64)",
        torch_version="2.13.0",
        threads=2,
        backend=BackendSummary(
            name="estimate",
            provenance="estimated",
            sensor="none: process CPU time (CLOCK_PROCESS_CPUTIME_ID) x per-core power",
            formula=PROVENANCE.formula,
            constants=dict(PROVENANCE.constants),
            reason="auto: no readable sensor, estimate is the fallback",
            warnings=["rapl unavailable: [Errno 13] Permission denied: '/sys/class/powercap/intel-rapl:0/energy_uj'"],
        ),
        energy_provenance=PROVENANCE,
        capture=CaptureSummary(method="torch.export", notes=["make_fx was not needed; [/red] stays text"]),
        measurement_notes=["glibc malloc thresholds fixed for the analysing process (mmap 64 MiB, trim 64 MiB)"],
        total_energy_j=total / 0.62,
        total_energy_ci_j=(total / 0.66, total / 0.6),
        total_energy_ci_confidence=0.9375,
        total_time_s=0.0123,
        active_energy_j=total / 0.7,
        idle_power_w=1.5,
        node_energy_sum_j=total,
        coverage=0.62,
        trials=5,
        ci_method="order-statistic confidence interval of the median over trials",
        noisy_relative_spread=0.25,
        min_window_s=0.02,
        unique_signatures=5,
        nodes=nodes,
        rollups=Rollups(by_line=rollup_by_line(nodes, PROVENANCE), by_op=rollup_by_op(nodes, PROVENANCE)),
        findings=[],
    )


GENERATION = "/opt/venv/lib/python3.11/site-packages/transformers/generation/utils.py"
GENERATE_STEPS = 12  # prefill + 11 decoding steps: enough for the step table to fold its middle


def generate_report() -> Report:
    """``model.generate`` of a 2-layer GPT-2: one prefill, decoding steps with a growing cache, generate's glue."""
    base = golden_report()
    nodes: list[Node] = []
    for step in range(1, GENERATE_STEPS + 1):
        tokens = 16 if step == 1 else 1  # the prefill reads the prompt, each decoding step one new token
        for layer in range(2):
            for op, line, code, module, energy_per_token in (
                ("aten.addmm.default", 312, "x = torch.addmm(self.bias, x, self.weight)", "attn.c_attn", 6e-5),
                ("aten.gelu.default", 640, "hidden_states = self.act(hidden_states)", "mlp.act", 1e-5),
            ):
                nodes.append(
                    Node(
                        id=f"{op.split('.')[1]}_{layer}_{step}",
                        op=op,
                        energy_j=energy_per_token * (tokens + 0.01 * step),
                        time_s=energy_per_token * tokens / 50,
                        expected_energy_j=None,
                        source=NodeSource(file=HF, line=line, function="forward", code=code),
                        provenance=PROVENANCE,
                        module_path=f"transformer.h.{layer}.{module}",
                        module_type="GPT2Attention" if "attn" in module else "GPT2MLP",
                        inputs=[_tensor(1, tokens, 64)],
                        outputs=[_tensor(1, tokens, 64)],
                        step=step,
                    )
                )
        nodes.append(
            Node(
                id=f"argmax_{step}",
                op="aten.argmax.default",
                energy_j=2e-6,
                time_s=4e-8,
                expected_energy_j=None,
                source=NodeSource(
                    file=GENERATION, line=3283, function="_sample", code="next_tokens = torch.argmax(next_token_scores)"
                ),
                provenance=PROVENANCE,
                inputs=[_tensor(1, 256)],
                outputs=[_tensor(1)],
            )
        )
    total = sum(n.energy_j for n in nodes)
    nodes = [
        n.__class__(**{**{f: getattr(n, f) for f in n.__struct_fields__}, "share": n.energy_j / total}) for n in nodes
    ]
    fields = {f: getattr(base, f) for f in base.__struct_fields__}
    fields.update(
        target="examples/gpt2.py:generate",
        energy_scope="one call of the workload (GPT2LMHeadModel.generate)",
        capture=CaptureSummary(method="make_fx", notes=[]),
        nodes=nodes,
        rollups=Rollups(by_line=rollup_by_line(nodes, PROVENANCE), by_op=rollup_by_op(nodes, PROVENANCE)),
        node_energy_sum_j=total,
        total_energy_j=total / 0.5,
        total_energy_ci_j=(total / 0.52, total / 0.48),
        active_energy_j=total / 0.55,
        coverage=0.5,
        unique_signatures=2 * 2 + 1,
        steps=GENERATE_STEPS,
    )
    return Report(**fields)


# The golden reports, by the name in their files' names.
FIXTURES = {"report": golden_report, "report-generate": generate_report}


def render(width: int, report: Report | None = None) -> str:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False, legacy_windows=False)
    (report or golden_report()).show(console)
    return out.getvalue()


def golden_path(width: int, fixture: str = "report") -> Path:
    return GOLDEN_DIR / f"{fixture}-{width}.txt"


def main() -> int:
    for fixture, make in FIXTURES.items():
        for width in WIDTHS:
            golden_path(width, fixture).write_text(render(width, make()), encoding="utf-8")
            print(f"wrote {golden_path(width, fixture)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
