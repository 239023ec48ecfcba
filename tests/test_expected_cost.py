"""FLOPs and bytes per node, against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magneton.capture import capture
from magneton.capture.cost import (
    NORM_FLOPS_PER_ELEMENT,
    SOFTMAX_FLOPS_PER_ELEMENT,
    FlopCounter,
    bytes_moved,
    distinct_elements,
)
from magneton.graph import TensorMeta
from magneton.workload import Workload

F32 = 4


def only(graph, op: str):
    nodes = [n for n in graph.nodes if n.op == op]
    assert len(nodes) == 1, [n.op for n in graph.nodes]
    return nodes[0]


def captured(fn, *args):
    class Program(nn.Module):
        def forward(self, *xs):
            return fn(*xs)

    return capture(Workload(Program().eval(), args))


def test_linear_flops_and_bytes() -> None:
    x, w, b = torch.randn(4, 16), torch.randn(32, 16), torch.randn(32)
    node = only(captured(F.linear, x, w, b), "aten.linear.default")
    assert node.flops == 2 * 4 * 16 * 32  # the bias add is not counted, as flop_counter counts addmm
    assert node.bytes == (4 * 16 + 32 * 16 + 32 + 4 * 32) * F32


def test_matmul_with_transposed_operand() -> None:
    a, b = torch.randn(8, 24), torch.randn(40, 24)
    node = only(captured(lambda a, b: a @ b.t(), a, b), "aten.matmul.default")
    assert node.flops == 2 * 8 * 24 * 40
    assert node.bytes == (8 * 24 + 40 * 24 + 8 * 40) * F32


def test_bmm_flops() -> None:
    a, b = torch.randn(3, 5, 7), torch.randn(3, 7, 11)
    node = only(captured(torch.bmm, a, b), "aten.bmm.default")
    assert node.flops == 2 * 3 * 5 * 7 * 11


def test_conv2d_flops_and_bytes() -> None:
    x, w, b = torch.randn(2, 3, 10, 10), torch.randn(8, 3, 3, 3), torch.randn(8)
    node = only(captured(F.conv2d, x, w, b), "aten.conv2d.default")
    out_positions = 2 * 8 * 8 * 8  # N * C_out * H_out * W_out
    assert node.flops == 2 * out_positions * 3 * 3 * 3
    assert node.bytes == (2 * 3 * 10 * 10 + 8 * 3 * 3 * 3 + 8 + out_positions) * F32


def test_softmax_and_layer_norm_conventions() -> None:
    x = torch.randn(6, 20)
    softmax = only(captured(lambda x: torch.softmax(x, -1), x), "aten.softmax.int")
    assert softmax.flops == SOFTMAX_FLOPS_PER_ELEMENT * 6 * 20 == 600
    assert softmax.bytes == 2 * 6 * 20 * F32
    norm = only(captured(lambda x: F.layer_norm(x, (20,)), x), "aten.layer_norm.default")
    assert norm.flops == NORM_FLOPS_PER_ELEMENT * 6 * 20


def test_sdpa_flops() -> None:
    q, k, v = torch.randn(2, 4, 8, 16), torch.randn(2, 4, 12, 16), torch.randn(2, 4, 12, 32)
    node = only(captured(F.scaled_dot_product_attention, q, k, v), "aten.scaled_dot_product_attention.default")
    batch = 2 * 4
    assert node.flops == 2 * batch * 8 * 12 * 16 + 2 * batch * 8 * 12 * 32
    assert node.bytes == (q.numel() + k.numel() + v.numel() + 2 * 4 * 8 * 32) * F32


def test_elementwise_and_views() -> None:
    x, y = torch.randn(5, 7), torch.randn(7)
    graph = captured(lambda x, y: (x.t().t() + 0).relu() + y.expand(5, 7), x, y)
    for node in graph.nodes:
        if node.zero_cost:
            assert (node.flops, node.bytes) == (0, 0), node.op
    relu = only(graph, "aten.relu.default")
    assert relu.flops == 35 and relu.bytes == 2 * 35 * F32


def test_broadcast_operand_is_read_once() -> None:
    expanded = TensorMeta((5, 7), "float32", (0, 1), False, "cpu")
    assert distinct_elements(expanded) == 7
    full = TensorMeta((5, 7), "float32", (7, 1), True, "cpu")
    assert bytes_moved("aten.add.Tensor", [full, expanded], [full]) == (35 + 7 + 35) * F32


def test_embedding_reads_only_gathered_rows() -> None:
    table, ids = torch.randn(1000, 16), torch.randint(0, 1000, (2, 5))
    node = only(captured(lambda i, t: F.embedding(i, t), ids, table), "aten.embedding.default")
    assert node.flops == 0
    # ids (int64) + the 10 gathered rows + the output
    assert node.bytes == 10 * 8 + 10 * 16 * F32 + 10 * 16 * F32


def test_counter_sums_decomposed_ops_and_flop_counter_formulas() -> None:
    a, b = torch.randn(4, 6), torch.randn(6, 3)
    with FlopCounter() as counted:
        torch.mm(a, b)
        torch.exp(a)
    assert counted.flops == 2 * 4 * 6 * 3 + 24


def test_json_nodes_carry_flops_and_bytes() -> None:
    from magneton.report.build import build_report  # noqa: F401 - the field names are the contract

    graph = captured(lambda x: x * 2, torch.randn(3, 3))
    node = only(graph, "aten.mul.Tensor")
    assert (node.flops, node.bytes) == (9, 2 * 9 * F32)


def test_an_argument_that_picks_another_kernel_names_the_op_apart() -> None:
    from magneton.expected.features import NodeFeatures

    graph = captured(lambda x: F.gelu(x, approximate="tanh") + F.gelu(x), torch.randn(8, 16))
    ops = [NodeFeatures.of(n, threads=2).op for n in graph.nodes if n.op == "aten.gelu.default"]
    assert sorted(ops) == ["gelu", "gelu_tanh"]

    def attention(q, k, v, mask):
        sdpa = F.scaled_dot_product_attention
        causal_positional = sdpa(q, k, v, None, 0.0, True)
        return sdpa(q, k, v, is_causal=True) + sdpa(q, k, v) + sdpa(q, k, v, attn_mask=mask) + causal_positional

    q, mask = torch.randn(1, 2, 8, 4), torch.zeros(1, 1, 8, 8)
    graph = captured(attention, q, q.clone(), q.clone(), mask)
    ops = [NodeFeatures.of(n, threads=2).op for n in graph.nodes if "attention" in n.op]
    causal = "scaled_dot_product_attention_causal"
    assert ops == [causal, causal, "scaled_dot_product_attention", "scaled_dot_product_attention"]


def test_inner_dim_is_the_row_a_kernel_loops_over() -> None:
    from magneton.expected.features import NodeFeatures

    def program(q, x, w):
        return F.scaled_dot_product_attention(q, q, q), F.layer_norm(x, (16,)), torch.relu(x), x @ w

    graph = captured(program, torch.randn(1, 4, 32, 8), torch.randn(6, 16), torch.randn(16, 3))
    inner = {n.op.split(".")[1]: NodeFeatures.of(n, threads=2).inner_dim for n in graph.nodes if not n.zero_cost}
    assert inner["scaled_dot_product_attention"] == 8  # the head size
    assert inner["layer_norm"] == 16 and inner["matmul" if "matmul" in inner else "mm"] == 16
    assert inner["relu"] == 0  # elementwise: runs over its elements flat


def test_complex_inputs_name_the_op_apart() -> None:
    from magneton.expected.features import NodeFeatures

    graph = captured(lambda x: torch.fft.rfft(x).abs() + x.abs().sum(), torch.randn(4, 64))
    ops = sorted(NodeFeatures.of(n, threads=2).op for n in graph.nodes if n.op == "aten.abs.default")
    assert ops == ["abs", "abs_complex"]  # a complex abs is a hypot: no calibrated abs says what it costs
