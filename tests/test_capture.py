"""Capture: ATen graphs with shapes, layouts, module paths and the user's source line for each operator."""

from __future__ import annotations

import io
import os
import sysconfig
from pathlib import Path

import pytest
import torch
from torch import nn

from magneton.capture import capture
from magneton.capture.source import SourceLocation, innermost_user_frame, is_user_file, parse_stack_trace
from magneton.errors import CaptureError
from magneton.graph import OpGraph, OpNode, TensorMeta
from magneton.workload import Workload

THIS_FILE = os.path.realpath(__file__)


def line_of(path: str, marker: str) -> int:
    """1-based number of the only line of ``path`` ending with the comment ``# <marker>``."""
    lines = [
        i for i, text in enumerate(Path(path).read_text().splitlines(), 1) if text.rstrip().endswith(f"# {marker}")
    ]
    assert len(lines) == 1, (marker, lines)
    return lines[0]


def nodes_by_op(graph: OpGraph, op: str) -> list[OpNode]:
    return [node for node in graph.nodes if node.op == op]


def only(graph: OpGraph, op: str) -> OpNode:
    found = nodes_by_op(graph, op)
    assert len(found) == 1, f"{op}: {[n.id for n in found]} in {[n.op for n in graph.nodes]}"
    return found[0]


def assert_at_marker(node: OpNode, marker: str, function: str = "forward") -> None:
    assert node.source is not None, f"{node.id} has no source"
    line = line_of(THIS_FILE, marker)
    assert os.path.realpath(node.source.file) == THIS_FILE
    assert node.source.line == line, f"{node.id} -> line {node.source.line}, expected {line} ({marker})"
    assert node.source.function == function
    assert node.source.code == Path(THIS_FILE).read_text().splitlines()[line - 1].strip()


# --- a plain module: torch.export ----------------------------------------------------------------


class Annotated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.lin = nn.Linear(8, 16)
        self.norm = nn.LayerNorm(16)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)  # MARK-embedding
        y = self.lin(h)  # MARK-linear
        z = self.norm(y)  # MARK-layer-norm
        t = z.transpose(0, 1)  # MARK-transpose
        return t.contiguous()  # MARK-contiguous


@pytest.fixture(scope="module")
def annotated_graph() -> OpGraph:
    torch.manual_seed(0)
    return capture(Workload(Annotated().eval(), (torch.arange(4),)))


def test_plain_module_is_captured_by_export(annotated_graph: OpGraph) -> None:
    assert annotated_graph.method == "torch.export"
    assert annotated_graph.notes == []
    assert annotated_graph.device == "cpu"
    assert len(annotated_graph.pieces) == 1
    assert [node.op for node in annotated_graph.nodes] == [
        "aten.embedding.default",
        "aten.linear.default",
        "aten.layer_norm.default",
        "aten.transpose.int",
        "aten.contiguous.default",
    ]


def test_node_tensor_metadata(annotated_graph: OpGraph) -> None:
    embedding = only(annotated_graph, "aten.embedding.default")
    assert embedding.inputs == [
        TensorMeta((10, 8), "float32", (8, 1), True, "cpu"),
        TensorMeta((4,), "int64", (1,), True, "cpu"),
    ]
    assert embedding.outputs == [TensorMeta((4, 8), "float32", (8, 1), True, "cpu")]

    linear = only(annotated_graph, "aten.linear.default")
    assert [meta.shape for meta in linear.inputs] == [(4, 8), (16, 8), (16,)]
    assert linear.outputs == [TensorMeta((4, 16), "float32", (16, 1), True, "cpu")]

    contiguous = only(annotated_graph, "aten.contiguous.default")
    assert contiguous.inputs == [TensorMeta((16, 4), "float32", (1, 16), False, "cpu")]
    assert contiguous.outputs == [TensorMeta((16, 4), "float32", (4, 1), True, "cpu")]


def test_signature_is_op_layout_and_scalars(annotated_graph: OpGraph) -> None:
    transpose = only(annotated_graph, "aten.transpose.int")
    assert transpose.signature == "aten.transpose.int(float32[4, 16]s[16, 1]@cpu)[N,0,1][]"
    norm = only(annotated_graph, "aten.layer_norm.default")
    assert norm.signature.startswith("aten.layer_norm.default(float32[4, 16]s[16, 1]@cpu,")
    assert "1e-05" in norm.scalar_args


def test_module_paths_and_types(annotated_graph: OpGraph) -> None:
    got = {node.op: (node.module_path, node.module_type) for node in annotated_graph.nodes}
    assert got == {
        "aten.embedding.default": ("emb", "Embedding"),
        "aten.linear.default": ("lin", "Linear"),
        "aten.layer_norm.default": ("norm", "LayerNorm"),
        "aten.transpose.int": ("", "Annotated"),
        "aten.contiguous.default": ("", "Annotated"),
    }


@pytest.mark.parametrize(
    ("op", "marker"),
    [
        ("aten.embedding.default", "MARK-embedding"),
        ("aten.linear.default", "MARK-linear"),
        ("aten.layer_norm.default", "MARK-layer-norm"),
        ("aten.transpose.int", "MARK-transpose"),
        ("aten.contiguous.default", "MARK-contiguous"),
    ],
)
def test_each_node_maps_to_its_exact_source_line(annotated_graph: OpGraph, op: str, marker: str) -> None:
    assert_at_marker(only(annotated_graph, op), marker)


def test_views_are_zero_cost_but_contiguous_copy_is_not(annotated_graph: OpGraph) -> None:
    transpose = only(annotated_graph, "aten.transpose.int")
    assert transpose.zero_cost
    assert transpose.zero_cost_reason == "view: output aliases an input"
    contiguous = only(annotated_graph, "aten.contiguous.default")
    assert not contiguous.zero_cost and contiguous.zero_cost_reason is None
    for op in ("aten.embedding.default", "aten.linear.default", "aten.layer_norm.default"):
        assert only(annotated_graph, op).zero_cost_reason is None


def test_contiguous_on_contiguous_tensor_is_not_measured_as_a_copy() -> None:
    class AlreadyContiguous(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * 2).contiguous() + 1

    graph = capture(Workload(AlreadyContiguous(), (torch.ones(3, 3),)))
    # Export drops the no-op; whatever the capture method, only the two real computations cost energy.
    assert sorted(node.op for node in graph.nodes if not node.zero_cost) == ["aten.add.Tensor", "aten.mul.Tensor"]


def test_an_op_returning_its_input_is_a_view() -> None:
    """The aliasing check itself, on a graph that does record a no-op ``contiguous`` (export would drop it)."""
    from magneton.capture import annotate
    from magneton.graph import GraphPiece

    fx_graph = torch.fx.Graph()
    x = fx_graph.placeholder("x")
    same = fx_graph.call_function(torch.ops.aten.contiguous.default, (x,))
    copy = fx_graph.call_function(torch.ops.aten.clone.default, (same,))
    fx_graph.output((same, copy))
    piece = GraphPiece("main", torch.fx.GraphModule(nn.Module(), fx_graph), [torch.ones(3, 3)])
    graph = OpGraph("hand-built", [piece], [])
    annotate(graph)
    reasons = {node.op: node.zero_cost_reason for node in graph.nodes}
    assert reasons == {"aten.contiguous.default": "view: output aliases an input", "aten.clone.default": None}


def test_in_place_op_is_marked_mutating() -> None:
    class InPlace(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x * 2
            y.add_(1)
            return y

    graph = capture(Workload(InPlace(), (torch.ones(2, 2),)))
    add_ = only(graph, "aten.add_.Tensor")
    assert add_.mutates and not add_.zero_cost
    assert not only(graph, "aten.mul.Tensor").mutates


def test_function_workload_and_tuple_output() -> None:
    def two_outputs(x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {"pair": (x @ y, x.sum())}

    graph = capture(Workload(two_outputs, (torch.ones(2, 3), torch.ones(3, 2))))
    assert graph.method == "torch.export"
    assert [node.op for node in graph.nodes] == ["aten.matmul.default", "aten.sum.default"]
    matmul, total = graph.nodes
    assert matmul.outputs == [TensorMeta((2, 2), "float32", (2, 1), True, "cpu")]
    assert total.outputs == [TensorMeta((), "float32", (), True, "cpu")]
    assert (matmul.module_path, matmul.module_type) == ("", "")


def test_function_workload_ops_have_their_source_line() -> None:
    def two_outputs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x @ y  # MARK-function-workload

    graph = capture(Workload(two_outputs, (torch.ones(2, 3), torch.ones(3, 2))))
    assert_at_marker(only(graph, "aten.matmul.default"), "MARK-function-workload", function="two_outputs")


class CallsHelper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)  # MARK-helper-body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalise(self.lin(x))  # MARK-helper-call


def test_op_in_helper_method_maps_to_the_helper_line() -> None:
    graph = capture(Workload(CallsHelper(), (torch.ones(2, 4),)))
    assert_at_marker(only(graph, "aten.linear.default"), "MARK-helper-call")
    assert_at_marker(only(graph, "aten.softmax.int"), "MARK-helper-body", function="_normalise")


# --- data-dependent control flow: make_fx ---------------------------------------------------------


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.lin(x) * 2  # MARK-positive-branch
        return self.lin(x) - 1  # MARK-negative-branch


def test_data_dependent_control_flow_falls_back_to_make_fx() -> None:
    graph = capture(Workload(DataDependent().eval(), (torch.ones(4, 8),)))
    assert graph.method == "make_fx"
    assert len(graph.notes) == 2
    assert graph.notes[0].startswith("torch.export failed: ")
    assert graph.notes[1] == (
        "make_fx traced with real tensors: Python control flow follows the path taken for these example inputs"
    )
    ops = [node.op for node in graph.nodes]
    assert "aten.mul.Tensor" in ops and "aten.sub.Tensor" not in ops  # specialised to x.sum() > 0
    assert "aten.addmm.default" in ops
    assert_at_marker(only(graph, "aten.addmm.default"), "MARK-positive-branch")
    assert_at_marker(only(graph, "aten.mul.Tensor"), "MARK-positive-branch")


def test_data_dependent_control_flow_follows_the_other_branch_for_other_inputs() -> None:
    graph = capture(Workload(DataDependent().eval(), (-torch.ones(4, 8),)))
    assert graph.method == "make_fx"
    ops = [node.op for node in graph.nodes]
    assert "aten.sub.Tensor" in ops and "aten.mul.Tensor" not in ops
    assert_at_marker(only(graph, "aten.sub.Tensor"), "MARK-negative-branch")


# --- nothing captures the whole program: piecewise -----------------------------------------------


class Child(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x))  # MARK-child


class SerialisesBetweenChildren(nn.Module):
    """torch.save/torch.load of an intermediate breaks export, make_fx and symbolic_trace alike."""

    def __init__(self) -> None:
        super().__init__()
        self.a = Child()
        self.b = Child()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        buffer = io.BytesIO()
        torch.save(self.a(x), buffer)
        buffer.seek(0)
        return self.b(torch.load(buffer))


@pytest.fixture(scope="module")
def piecewise_graph() -> OpGraph:
    torch.manual_seed(0)
    return capture(Workload(SerialisesBetweenChildren().eval(), (torch.randn(4, 8),)))


def test_uncapturable_program_is_captured_piecewise(piecewise_graph: OpGraph) -> None:
    assert piecewise_graph.method == "piecewise"
    notes = piecewise_graph.notes
    assert [note.split(" failed: ")[0] for note in notes[:3]] == ["torch.export", "make_fx", "torch.fx.symbolic_trace"]
    assert notes[3:] == [
        "piece a: captured with torch.export",
        "piece b: captured with torch.export",
        "captured piecewise in 2 pieces; code between them is not measured per operator (see coverage)",
    ]
    assert [piece.name for piece in piecewise_graph.pieces] == ["a", "b"]


def test_piecewise_nodes(piecewise_graph: OpGraph) -> None:
    got = [(node.id, node.op, node.piece, node.fx_name) for node in piecewise_graph.nodes]
    assert got == [
        ("a/linear", "aten.linear.default", 0, "linear"),
        ("a/relu", "aten.relu.default", 0, "relu"),
        ("b/linear", "aten.linear.default", 1, "linear"),
        ("b/relu", "aten.relu.default", 1, "relu"),
    ]
    assert piecewise_graph.node("b/linear").module_path == "b.lin"
    assert piecewise_graph.node("b/linear").module_type == "Linear"
    for node in piecewise_graph.nodes:
        assert_at_marker(node, "MARK-child")
        assert node.inputs[0].shape == (4, 8)


def test_piecewise_root_ops_module_path_has_no_trailing_dot(piecewise_graph: OpGraph) -> None:
    assert piecewise_graph.node("a/relu").module_path == "a"


def test_uncapturable_function_raises_capture_error() -> None:
    def serialise(x: torch.Tensor) -> torch.Tensor:
        buffer = io.BytesIO()
        torch.save(x * 2, buffer)
        buffer.seek(0)
        return torch.load(buffer) + 1

    with pytest.raises(CaptureError) as info:
        capture(Workload(serialise, (torch.ones(2),)))
    message = str(info.value)
    assert message.startswith("no capture method worked:")
    for method in ("torch.export failed", "make_fx failed", "torch.fx.symbolic_trace failed"):
        assert method in message


# --- a third-party model: transformers GPT-2 ------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_graph() -> OpGraph:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=2, vocab_size=128, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(config).eval()
        input_ids = torch.randint(0, 128, (1, 16))
    output = model(input_ids, use_cache=False)
    assert isinstance(output, transformers.utils.ModelOutput)  # a dataclass, not a tensor or tuple
    return capture(Workload(model, (input_ids,), {"use_cache": False}))


def test_gpt2_is_captured_at_export_level(gpt2_graph: OpGraph) -> None:
    # transformers builds its causal mask only under torch.export's tracing (eager SDPA runs with is_causal):
    # the capture then falls back to pre-dispatch make_fx, which keeps export's operators and follows eager.
    assert gpt2_graph.method in ("torch.export", "make_fx (pre-dispatch)")
    if gpt2_graph.method != "torch.export":
        assert any("torch.export's graph runs" in note for note in gpt2_graph.notes), gpt2_graph.notes
    ops = {node.op for node in gpt2_graph.nodes}
    assert "aten.addmm.default" in ops or "aten.linear.default" in ops
    assert ops & {"aten.scaled_dot_product_attention.default", "aten.matmul.default", "aten.bmm.default"}
    assert len(nodes_by_op(gpt2_graph, "aten.layer_norm.default")) == 5  # 2 per block + ln_f


def test_gpt2_sources_point_into_transformers(gpt2_graph: OpGraph) -> None:
    sep = os.sep
    gpt2_file = f"transformers{sep}models{sep}gpt2{sep}modeling_gpt2.py"
    for node in gpt2_graph.nodes:
        assert node.source is not None, node.id
        assert is_user_file(node.source.file), (node.id, node.source.file)
        assert f"{sep}torch{sep}" not in node.source.file
        assert f"{sep}magneton{sep}" not in node.source.file
    layer_norms = nodes_by_op(gpt2_graph, "aten.layer_norm.default")
    assert all(node.source.file.endswith(gpt2_file) for node in layer_norms)
    attention = [node for node in gpt2_graph.nodes if node.op == "aten.scaled_dot_product_attention.default"]
    # The innermost non-torch frame: transformers' own SDPA integration, not torch's functional.
    assert attention and all(f"{sep}transformers{sep}" in node.source.file for node in attention)
    # The QKV projection is transformers' Conv1D: its addmm sits in transformers/pytorch_utils.py.
    c_attn = [
        node for node in gpt2_graph.nodes if node.module_path == "transformer.h.0.attn.c_attn" and not node.zero_cost
    ]
    assert [node.op for node in c_attn] == ["aten.addmm.default"]
    assert c_attn[0].module_type == "Conv1D"
    assert c_attn[0].source.file.endswith(f"transformers{sep}pytorch_utils.py")
    assert "addmm" in c_attn[0].source.code


def test_gpt2_module_paths(gpt2_graph: OpGraph) -> None:
    paths = {node.module_path for node in gpt2_graph.nodes}
    assert {
        "transformer.wte",
        "transformer.h.0.ln_1",
        "transformer.h.1.mlp.c_fc",
        "transformer.ln_f",
        "lm_head",
    } <= paths
    lm_head = [node for node in gpt2_graph.nodes if node.module_path == "lm_head"]
    assert [node.op for node in lm_head] == ["aten.linear.default"]
    assert lm_head[0].outputs[0].shape == (1, 16, 128)


# --- source frame filter ----------------------------------------------------------------------------


def _frame(path: str, line: int, function: str, code: str) -> str:
    return f'  File "{path}", line {line}, in {function}\n    {code}\n'


@pytest.fixture
def frames() -> dict[str, str]:
    torch_dir = os.path.dirname(torch.__file__)
    import magneton

    stdlib = sysconfig.get_paths()["stdlib"]
    return {
        "user": os.path.join("/home", "someone", "project", "model.py"),
        "third_party": os.path.join(stdlib, "site-packages", "transformers", "models", "gpt2", "modeling_gpt2.py"),
        "venv_third_party": os.path.join(
            "/opt", "venv", "lib", "python3.11", "site-packages", "transformers", "pytorch_utils.py"
        ),
        "torch": os.path.join(torch_dir, "nn", "modules", "module.py"),
        "magneton": os.path.join(os.path.dirname(magneton.__file__), "capture.py"),
        "magneton_example": os.path.join(os.path.dirname(magneton.__file__), "examples", "tiny_gpt.py"),
        "stdlib": os.path.join(stdlib, "contextlib.py"),
    }


def test_is_user_file(frames: dict[str, str]) -> None:
    assert is_user_file(frames["user"])
    assert is_user_file(frames["third_party"])
    assert is_user_file(frames["venv_third_party"])
    assert is_user_file(frames["magneton_example"])
    assert not is_user_file(frames["torch"])
    assert not is_user_file(frames["magneton"])
    assert not is_user_file(frames["stdlib"])
    assert not is_user_file("<eval_with_key>.3")


def test_parse_stack_trace(frames: dict[str, str]) -> None:
    trace = _frame(frames["user"], 12, "forward", "y = self.block(x)") + _frame(
        frames["torch"], 1775, "_call_impl", "return forward_call(*args, **kwargs)"
    )
    assert parse_stack_trace(trace) == [
        SourceLocation(frames["user"], 12, "forward", "y = self.block(x)"),
        SourceLocation(frames["torch"], 1775, "_call_impl", "return forward_call(*args, **kwargs)"),
    ]


def test_parse_stack_trace_reads_missing_code_from_file() -> None:
    line = line_of(THIS_FILE, "MARK-linecache")  # MARK-linecache
    trace = f'  File "{THIS_FILE}", line {line}, in test_parse_stack_trace_reads_missing_code_from_file\n'
    (frame,) = parse_stack_trace(trace)
    assert frame.line == line
    assert frame.code == 'line = line_of(THIS_FILE, "MARK-linecache")  # MARK-linecache'


def test_innermost_user_frame_skips_torch_keeps_third_party(frames: dict[str, str]) -> None:
    trace = (
        _frame(frames["magneton"], 62, "forward", "return tuple(...)")
        + _frame(frames["user"], 20, "forward", "return self.model(x)")
        + _frame(frames["torch"], 1775, "_call_impl", "return forward_call(*args, **kwargs)")
        + _frame(frames["venv_third_party"], 119, "forward", "x = torch.addmm(...)")
        + _frame(frames["torch"], 500, "inner", "return fn(x)")
        + _frame(frames["stdlib"], 81, "inner", "return func(*args, **kwds)")
    )
    assert innermost_user_frame(trace) == SourceLocation(
        frames["venv_third_party"], 119, "forward", "x = torch.addmm(...)"
    )


def test_innermost_user_frame_falls_back_to_user_code(frames: dict[str, str]) -> None:
    trace = _frame(frames["user"], 20, "forward", "return self.lin(x)") + _frame(
        frames["torch"], 125, "forward", "return F.linear(input, self.weight, self.bias)"
    )
    assert innermost_user_frame(trace) == SourceLocation(frames["user"], 20, "forward", "return self.lin(x)")


def test_innermost_user_frame_none_when_only_library_frames(frames: dict[str, str]) -> None:
    trace = _frame(frames["magneton"], 62, "forward", "return tuple(...)") + _frame(
        frames["torch"], 125, "forward", "return F.linear(input, self.weight, self.bias)"
    )
    assert innermost_user_frame(trace) is None
    assert innermost_user_frame(None) is None
    assert innermost_user_frame("") is None
