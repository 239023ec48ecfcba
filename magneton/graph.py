"""The operator graph Magneton analyses: nodes are operators, edges are tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int
    function: str
    code: str

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "function": self.function, "code": self.code}


@dataclass(frozen=True)
class TensorMeta:
    shape: tuple[int, ...]
    dtype: str
    stride: tuple[int, ...]
    contiguous: bool
    device: str

    @classmethod
    def of(cls, tensor: torch.Tensor) -> TensorMeta:
        import torch

        dtype = str(tensor.dtype).removeprefix("torch.")
        if tensor.layout != torch.strided:  # sparse/nested tensors have no strides
            return cls(tuple(tensor.shape), dtype, (), False, str(tensor.device))
        return cls(tuple(tensor.shape), dtype, tuple(tensor.stride()), tensor.is_contiguous(), str(tensor.device))

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "stride": list(self.stride),
            "contiguous": self.contiguous,
            "device": self.device,
        }

    def key(self) -> str:
        return f"{self.dtype}{list(self.shape)}s{list(self.stride)}@{self.device}"


@dataclass
class OpNode:
    """One operator call of the captured program."""

    id: str
    op: str  # ATen overload name ("aten.addmm.default"), or module/function name for fx fallbacks
    piece: int  # index of the GraphPiece that runs it
    fx_name: str  # node name inside that piece's graph
    module_path: str
    module_type: str
    source: SourceLocation | None
    inputs: list[TensorMeta] = field(default_factory=list)
    outputs: list[TensorMeta] = field(default_factory=list)
    scalar_args: str = ""  # non-tensor arguments; they change what the op computes
    mutates: bool = False
    zero_cost_reason: str | None = None  # set for views and metadata-only ops, never measured
    phase: str | None = None  # training step: "forward", "backward" or "optimizer"; None for inference
    forward_node: str | None = None  # a backward node: the id of the forward operator it differentiates
    call: int | None = None  # which call of the root module ran it (1-based): decoding step k of generate
    flops: int = 0  # floating-point operations of one call (magneton.capture.cost)
    bytes: int = 0  # bytes read + written by one call; 0 for views

    @property
    def signature(self) -> str:
        """Op + input shapes, dtypes, strides + scalar args: equal signatures cost the same."""
        inputs = ",".join(meta.key() for meta in self.inputs)
        return f"{self.op}({inputs}){self.scalar_args}"

    @property
    def zero_cost(self) -> bool:
        return self.zero_cost_reason is not None


@dataclass
class GraphPiece:
    """An executable part of the program: a GraphModule and the flat inputs it runs on."""

    name: str
    module: torch.fx.GraphModule
    flat_inputs: list[Any]


@dataclass(frozen=True)
class TrainParam:
    """A parameter of a captured training step, as the training rules see it."""

    name: str  # the model's parameter name ("h.0.attn.qkv.weight")
    placeholder: str  # fx name of the graph input that holds it
    dtype: str
    requires_grad: bool
    updated: bool | None  # in a param group whose lr is not 0 (a warm-up's 0 counts as not 0); None: no optimizer
    gradient_node: str | None  # id of the OpNode whose output is its gradient; None: no gradient is computed
    float32_state: bool = False  # after the step the optimizer state holds a float32 tensor of its shape (a master)


@dataclass(frozen=True)
class TrainingInfo:
    """What a training step's graph alone does not say: which inputs are parameters and what the optimizer owns."""

    parameters: tuple[TrainParam, ...]
    optimizer: str | None  # the optimizer's class name; None: the step has no optimizer
    scaler: bool = False  # the step scales its loss with a GradScaler


@dataclass
class OpGraph:
    method: str  # "torch.export", "make_fx (pre-dispatch)", "make_fx", "torch.fx.symbolic_trace" or "piecewise"
    pieces: list[GraphPiece]
    nodes: list[OpNode]
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"
    mutates_inputs: bool = False  # the program writes into its own input tensors
    training: TrainingInfo | None = None  # set for a captured training step

    def node(self, node_id: str) -> OpNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)
