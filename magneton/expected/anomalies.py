"""Anomaly findings: operators that cost far more than an operator of their kind and shape should.

A node is an anomaly when both hold:

1. one of
   - its counterfactual replay shows that well-laid-out inputs save >= ``min_gap``
     (10%) of its energy (the median; every trial's pair of windows must also see a
     saving), measured: the backend's provenance;
   - it only materialises a layout another op could read directly: a copy of an
     expanded (broadcast) view feeding an elementwise op, or a transposed copy
     feeding a matmul (its ideal energy is zero: measured);
   - its measured energy, even at the low end of its confidence interval, exceeds
     ``factor`` (2x) the regression's expected energy for its kind and shape, well laid
     out, widened by the model's held-out error: by its MdAPE (2 x 1.15 = 2.3x at 15%), or,
     when larger, by how far it routinely predicts low for the node's family (the 90th
     percentile of measured / predicted on shapes left out of its training): a model that
     is often 50% low on unary ops must not call a 2.1x unary node surprising (predicted); an
     op calibration never measured, held only by the catch-all elementwise families (topk,
     linalg_solve, an FFT), gets no regression verdict at all;
2. its excess is at least ``min_share`` (2%) of the workload's energy.

Nodes on one source line with the same op and reason form one finding. The
explanation names what made the node surprising (strides, broadcast, achieved
throughput); the suggestion names what produced the bad layout: the upstream
view or op and its source line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from magneton.capture.cost import aten_base_name
from magneton.expected.counterfactual import Counterfactual
from magneton.expected.features import NodeFeatures, is_channels_last, is_expanded, op_family
from magneton.expected.model import ExpectedModel
from magneton.findings import Finding, FindingSource
from magneton.graph import OpGraph, OpNode, SourceLocation, TensorMeta

MIN_FAMILY_POINTS = 5  # a regression verdict needs this many calibration points of the node's family
# An op that only the catch-all elementwise families hold (op_family puts every unknown op there: linalg_solve,
# topk, an FFT) needs calibration points of its own: elementwise costs say nothing about it, so its prediction
# is no evidence of waste. Named families (matmul, norm, ...) share costs across their ops (mm, linear, addmm).
CATCH_ALL_FAMILIES = frozenset({"unary", "binary"})
MIN_OP_POINTS = 3
MATERIALISING_OPS = frozenset({"clone", "contiguous", "_to_copy", "to", "expand_copy", "repeat", "tile", "copy"})
VIEW_OPS_SHOWN = 3  # upstream views named in a suggestion


@dataclass(frozen=True)
class AnomalyOptions:
    factor: float = 2.0  # measured / expected above which the regression flags a node
    min_share: float = 0.02  # excess / total energy below which nothing is reported
    min_gap: float = 0.10  # counterfactual saving (fraction of the node's energy) that flags a node


@dataclass(frozen=True)
class NodeEvidence:
    """Everything the detector knows about one measured node."""

    node: OpNode
    energy_j: float  # measured (or estimated) per forward pass
    time_s: float
    energy_low_j: float | None = None  # lower end of the node's confidence interval
    expected_j: float | None = None  # predicted, ideal layout
    features: NodeFeatures | None = None
    counterfactual: Counterfactual | None = None


@dataclass
class _Group:
    reason: str
    evidence: list[NodeEvidence] = field(default_factory=list)
    excess_j: float = 0.0
    expected_j: float = 0.0
    excess_provenance: str = "measured"
    explanation: str = ""
    suggestion: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class GraphIndex:
    """Producers and consumers of each OpNode, from the fx graphs of the capture."""

    def __init__(self, graph: OpGraph) -> None:
        self.graph = graph
        self.by_fx: dict[tuple[int, str], OpNode] = {(n.piece, n.fx_name): n for n in graph.nodes}
        self._fx: dict[tuple[int, str], Any] = {}
        for index, piece in enumerate(graph.pieces):
            for fx_node in piece.module.graph.nodes:
                self._fx[(index, fx_node.name)] = fx_node

    def _input_fx_nodes(self, node: OpNode) -> list[Any]:
        import torch

        fx_node = self._fx.get((node.piece, node.fx_name))
        if fx_node is None:
            return []
        found: list[Any] = []

        def walk(value: Any) -> None:
            if isinstance(value, torch.fx.Node):
                found.append(value)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    walk(item)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)

        walk((list(fx_node.args), dict(fx_node.kwargs)))
        return found

    def producer(self, node: OpNode, input_index: int) -> tuple[OpNode | None, str]:
        """The OpNode that made tensor input ``input_index`` (None for a program input or parameter), and its name."""
        inputs = self._input_fx_nodes(node)
        if len(inputs) != len(node.inputs) or input_index >= len(inputs):
            return None, ""
        fx_input = inputs[input_index]
        return self.by_fx.get((node.piece, fx_input.name)), str(fx_input.name)

    def consumers(self, node: OpNode) -> list[OpNode]:
        fx_node = self._fx.get((node.piece, node.fx_name))
        if fx_node is None:
            return []
        users = [self.by_fx.get((node.piece, user.name)) for user in fx_node.users]
        return [user for user in users if user is not None]


def _where(source: SourceLocation | None) -> str:
    if source is None:
        return "(no source line)"
    code = f" (`{source.code}`)" if source.code else ""
    return f"{source.file}:{source.line}{code}"


def _describe_layout(index: int, meta: TensorMeta) -> str:
    shape, stride = tuple(meta.shape), tuple(meta.stride)
    if is_expanded(meta):
        return f"input {index} is an expanded broadcast view (shape {shape}, strides {stride})"
    if is_channels_last(meta):
        return f"input {index} is stored channels-last (shape {shape}, strides {stride})"
    return f"input {index} is a non-contiguous view (shape {shape}, strides {stride})"


def _upstream(index: GraphIndex, node: OpNode, input_index: int) -> str:
    """The view chain that produced an input: 'aten.transpose.int at f.py:12 (`...`)'."""
    steps = []
    current, position = node, input_index
    for _ in range(VIEW_OPS_SHOWN):
        producer, name = index.producer(current, position)
        if producer is None:
            if name:
                steps.append(f"the program input or parameter `{name}`")
            break
        steps.append(f"{producer.op} at {_where(producer.source)}")
        if not producer.zero_cost or not producer.inputs:
            break
        current, position = producer, 0
    return " <- ".join(steps) if steps else "an operator Magneton could not trace"


def _throughput_note(evidence: NodeEvidence, model: ExpectedModel | None) -> str:
    features, time_s = evidence.features, evidence.time_s
    if model is None or features is None or time_s <= 0:
        return ""
    family = features.family
    if features.flops > 0 and family in ("matmul", "conv", "attention") and family in model.family_flops_per_s:
        achieved = features.flops / time_s
        peak = model.family_flops_per_s[family]
        return (
            f"runs at {achieved / peak:.0%} of this machine's {family} throughput "
            f"({achieved / 1e9:.2f} of {peak / 1e9:.2f} GFLOP/s)"
        )
    if features.bytes > 0 and family in model.family_bytes_per_s:
        achieved = features.bytes / time_s
        peak = model.family_bytes_per_s[family]
        return (
            f"moves data at {achieved / peak:.0%} of this machine's {family} bandwidth "
            f"({achieved / 1e9:.2f} of {peak / 1e9:.2f} GB/s)"
        )
    return ""


def _materialisation(index: GraphIndex, node: OpNode) -> tuple[str, OpNode] | None:
    """('broadcast' | 'transpose', consumer) when a copy only re-lays-out data its consumer could read as is."""
    if aten_base_name(node.op) not in MATERIALISING_OPS or not node.inputs or not node.outputs:
        return None
    source, out = node.inputs[0], node.outputs[0]
    if source.dtype != out.dtype and aten_base_name(node.op) in ("_to_copy", "to"):
        return None  # a dtype conversion is work, not only layout
    consumers = index.consumers(node)
    if not consumers:
        return None
    broadcast = is_expanded(source) or (
        aten_base_name(node.op) in ("repeat", "tile") and math.prod(out.shape) > math.prod(source.shape)
    )
    if broadcast and all(op_family(c.op, len(c.inputs)) == "binary" for c in consumers):
        return "broadcast", consumers[0]
    transposed = (
        len(source.shape) >= 2
        and not source.contiguous
        and len(source.stride) == len(source.shape)
        and source.stride[-2] == 1
        and source.stride[-1] == source.shape[-2]
    )
    if transposed and all(op_family(c.op, len(c.inputs)) == "matmul" for c in consumers):
        return "transpose", consumers[0]
    return None


def _source(node: OpNode) -> FindingSource | None:
    if node.source is None:
        return None
    return FindingSource(
        file=node.source.file, line=node.source.line, code=node.source.code, function=node.source.function
    )


def find_anomalies(
    graph: OpGraph,
    evidence: Sequence[NodeEvidence],
    total_energy_j: float,
    model: ExpectedModel | None,
    options: AnomalyOptions,
    measured_provenance: str,
    model_label: str = "",
    model_error: float = 0.0,
) -> list[Finding]:
    """Anomaly findings, one per (source line, op, reason); see the module doc for the criteria."""
    index = GraphIndex(graph)
    base_threshold = options.factor * (1 + max(0.0, model_error))
    groups: dict[tuple[str, int, str, str], _Group] = {}

    def group_for(item: NodeEvidence, reason: str) -> _Group:
        source = item.node.source
        key = (source.file if source else "", source.line if source else 0, item.node.op, reason)
        return groups.setdefault(key, _Group(reason))

    for item in evidence:
        node = item.node
        if node.zero_cost or item.energy_j <= 0:
            continue
        materialised = _materialisation(index, node)
        cf = item.counterfactual
        if materialised is not None:
            what, consumer = materialised
            group = group_for(item, f"materialised-{what}")
            group.evidence.append(item)
            group.excess_j += item.energy_j
            layout = _describe_layout(0, node.inputs[0])
            if what == "broadcast":
                group.explanation = (
                    f"broadcast operand materialised: {node.op} copies {math.prod(node.outputs[0].shape)} elements "
                    f"({layout}) only for {consumer.op} at {_where(consumer.source)}, which broadcasts by itself"
                )
                group.suggestion = (
                    f"pass the un-materialised operand to {consumer.op} and let it broadcast; the copy comes from "
                    f"{_upstream(index, node, 0)}"
                )
            else:
                group.explanation = (
                    f"transposed copy made on every call: {node.op} copies {layout} only for {consumer.op} at "
                    f"{_where(consumer.source)}, which reads a transposed operand directly"
                )
                group.suggestion = (
                    f"drop the copy and pass the transposed view to {consumer.op} (or store the operand "
                    f"pre-transposed once); the transpose comes from {_upstream(index, node, 0)}"
                )
            group.details = {"consumer": consumer.id, "ideal_energy_j": 0.0}
            continue
        if cf is not None and cf.gap >= options.min_gap and cf.consistent:
            group = group_for(item, "layout")
            group.evidence.append(item)
            ideal_j = item.energy_j * (1 - cf.gap)
            group.excess_j += item.energy_j - ideal_j
            group.expected_j += ideal_j
            layouts = "; ".join(_describe_layout(i, node.inputs[i]) for i in cf.bad_inputs)
            note = _throughput_note(item, model)
            group.explanation = (
                f"{layouts}; on well-laid-out copies the same {node.op} costs {cf.gap:.0%} less "
                f"(replayed: {cf.ideal_j:.3g} J vs {cf.original_j:.3g} J per call)" + (f"; {note}" if note else "")
            )
            group.suggestion = "; ".join(
                f"input {i} comes from {_upstream(index, node, i)}: produce it contiguous (or keep the layout this "
                f"op reads) instead of handing {aten_base_name(node.op)} a strided view"
                for i in cf.bad_inputs
            )
            group.details = {"counterfactual": cf.to_json()}
            continue
        expected_j = item.expected_j
        features = item.features
        if (
            model is None
            or expected_j is None
            or features is None
            or model.family_points.get(features.family, 0) < MIN_FAMILY_POINTS
            or (features.family in CATCH_ALL_FAMILIES and model.op_points.get(features.op, 0) < MIN_OP_POINTS)
            # Beyond the factor, the excess must clear the model's own typical error and the node's interval.
            or min(item.energy_j, item.energy_low_j or item.energy_j)
            <= max(base_threshold, options.factor * model.routine_underprediction(features.family)) * expected_j
        ):
            continue
        group = group_for(item, "regression")
        group.evidence.append(item)
        group.excess_j += item.energy_j - expected_j
        group.expected_j += expected_j
        group.excess_provenance = "predicted"
        reasons = [
            f"measured {item.energy_j / expected_j:.1f}x the expected energy of "
            f"{'an' if features.family[0] in 'aeiou' else 'a'} {features.family} of this shape"
        ]
        note = _throughput_note(item, model)
        if note:
            reasons.append(note)
        if features.dtype_width != features.ideal().dtype_width:
            reasons.append(f"computes in {features.dtype} where float32 is usual on {features.device_type}")
        reasons.extend(_describe_layout(i, m) for i, m in enumerate(node.inputs) if not m.contiguous and m.stride)
        group.explanation = "; ".join(reasons)
        bad = [i for i, m in enumerate(node.inputs) if not m.contiguous and m.stride]
        hints = [f"input {i} comes from {_upstream(index, node, i)}" for i in bad]
        if features.dtype_width != features.ideal().dtype_width:
            hints.append(f"compute in float32 (the inputs come from {_upstream(index, node, 0)})")
        group.suggestion = "; ".join(hints) or (
            f"compare with a well-shaped {features.family} (batch small calls together, avoid degenerate shapes)"
        )
        group.details = {"ratio": item.energy_j / expected_j}

    total = total_energy_j if total_energy_j > 0 and math.isfinite(total_energy_j) else 0.0
    findings = []
    for (_file, _line, op, reason), group in groups.items():
        if total <= 0 or group.excess_j / total < options.min_share:
            continue
        first = group.evidence[0].node
        energy_j = sum(item.energy_j for item in group.evidence)
        label = {
            "layout": "badly laid-out input",
            "materialised-broadcast": "broadcast operand materialised",
            "materialised-transpose": "transposed copy made on every call",
            "regression": "far above its expected energy",
        }[reason]
        findings.append(
            Finding(
                kind="anomaly",
                rule=None,
                category=None,
                title=f"{op}: {label}",
                energy_j=energy_j,
                excess_energy_j=group.excess_j,
                share=group.excess_j / total,
                source=_source(first),
                nodes=tuple(item.node.id for item in group.evidence),
                suggestion=group.suggestion,
                explanation=group.explanation,
                energy_provenance=measured_provenance,
                excess_provenance=group.excess_provenance if reason == "regression" else measured_provenance,
                details={
                    "reason": reason,
                    "expected_energy_j": group.expected_j,
                    "expected_provenance": "predicted" if reason == "regression" else measured_provenance,
                    "model": model_label if reason == "regression" else None,
                    **group.details,
                },
            )
        )
    return findings


def evidence_for(
    graph: OpGraph,
    energies: Mapping[str, tuple[float, float]],
    features: Mapping[str, NodeFeatures],
    expected: Mapping[str, float],
    counterfactuals: Mapping[str, Counterfactual],
    energy_low: Mapping[str, float] | None = None,
) -> list[NodeEvidence]:
    return [
        NodeEvidence(
            node,
            energies[node.id][0],
            energies[node.id][1],
            (energy_low or {}).get(node.id),
            expected.get(node.id),
            features.get(node.id),
            counterfactuals.get(node.id),
        )
        for node in graph.nodes
        if node.id in energies
    ]


__all__ = ["AnomalyOptions", "GraphIndex", "NodeEvidence", "evidence_for", "find_anomalies"]
