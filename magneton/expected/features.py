"""Per-node features for the expected-energy regression, and their "well laid out" ideal values.

A node's :class:`NodeFeatures` are plain data (strings and numbers) so that
calibration points can be cached as JSON and the model retrained from them.
The regression sees the op's family and name, how much work it does (FLOPs,
bytes, output elements), its dtype width and its inputs' layout (non-contiguous,
expanded/broadcast, channels-last). *Expected* energy is what the op should cost
when its inputs are laid out well, so predictions use :meth:`NodeFeatures.ideal`:
layout features at their best values and float64 replaced by the device's usual
float32. Layout features explain an excess; they never excuse it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from magneton.capture.cost import (
    ATTENTION_OPS,
    EVAL_BATCH_NORM_OPS,
    NORM_OPS,
    REDUCTION_OPS,
    SOFTMAX_OPS,
    aten_base_name,
    dtype_width,
)

if TYPE_CHECKING:
    from magneton.graph import OpNode, TensorMeta

# Bump when the meaning of a stored feature, or the sweep that measures them, changes: older caches are rebuilt.
# 2: the stratified sweep (every elementwise op across a size ladder, factories, analyze's operand rotation).
# 3: ops whose arguments pick a different kernel are named apart ("gelu_tanh"; see ``op_variant``), masked attention.
# 4: the innermost dimension (``inner_dim``); attention heads of 8 and 16, matrix-vector products in the sweep;
#    complex-valued ops named apart.
FEATURE_VERSION = 4

MATMUL_OPS = frozenset(
    {"mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear", "_addmm_activation", "mv", "dot", "einsum"}
)
CONV_OPS = frozenset(
    {"convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d"}
)
COPY_OPS = frozenset(
    {
        "clone",
        "contiguous",
        "_to_copy",
        "to",
        "copy",
        "copy_",
        "expand_copy",
        "repeat",
        "repeat_interleave",
        "tile",
        "constant_pad_nd",
        "pad",
        "flip",
        "roll",
        "_unsafe_view",
        "permute_copy",
        "transpose_copy",
        "clone_",
    }
)
CAT_OPS = frozenset({"cat", "stack", "concat", "concatenate", "hstack", "vstack"})
GATHER_FAMILY_OPS = frozenset({"index_select", "gather", "index", "take", "index_put", "scatter"})
FACTORY_OPS = frozenset(
    {"arange", "zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like", "scalar_tensor"}
)
MODULE_FAMILIES = {
    "linear": "matmul",
    "conv1d": "conv",
    "conv2d": "conv",
    "conv3d": "conv",
    "layernorm": "norm",
    "groupnorm": "norm",
    "rmsnorm": "norm",
    "batchnorm1d": "norm",
    "batchnorm2d": "norm",
    "embedding": "embedding",
    "softmax": "softmax",
    "multiheadattention": "attention",
}
LAYOUT_FEATURES = ("noncontiguous_inputs", "expanded_inputs", "channels_last_inputs")
USUAL_FLOAT_WIDTH = 4  # float32: the usual dtype on CPUs and, for the default math mode, on GPUs too


# Arguments that select another kernel of the same ATen op, at a different cost per element: on our CPUs
# gelu(approximate="tanh") costs 2.5-4x the erf gelu, so one "gelu" op hid a 3x spread from the regression;
# a causal attention skips the blocks above the diagonal (about half the work for the same FLOP count).
# (argument name, position among the op's arguments, value, variant name)
_KERNEL_VARIANTS: dict[str, tuple[tuple[str, int, str, str], ...]] = {
    "gelu": (("approximate", 1, "'tanh'", "gelu_tanh"),),
    "scaled_dot_product_attention": (("is_causal", 5, "True", "scaled_dot_product_attention_causal"),),
}


def _top_level_items(text: str) -> list[str]:
    """The comma-separated items of a bracketed list (``OpNode.scalar_args``' rendering), nested lists whole."""
    items, depth, current = [], 0, ""
    for char in text[1:-1]:
        if char == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        current += char
    return [*items, current] if current else items


def _argument(scalar_args: str, name: str, position: int) -> str | None:
    """One argument's rendering from ``OpNode.scalar_args`` (``[positional...][[name,value]...]``), if given."""
    split = scalar_args.find("][")
    if not scalar_args.startswith("[") or split < 0:
        return None
    positional, keywords = _top_level_items(scalar_args[: split + 1]), _top_level_items(scalar_args[split + 1 :])
    for keyword in keywords:
        pair = _top_level_items(keyword)
        if len(pair) == 2 and pair[0] == repr(name):
            return pair[1]
    return positional[position] if position < len(positional) else None


def op_variant(base: str, scalar_args: str, dtype: str = "float32") -> str:
    """The op's name for the regression: its ATen base name, or a variant name where an argument picks the
    kernel. Complex inputs run other kernels (an abs is a hypot): "abs_complex" is not a calibrated abs."""
    for name, position, value, variant in _KERNEL_VARIANTS.get(base, ()):
        if _argument(scalar_args, name, position) == value:
            base = variant
            break
    return f"{base}_complex" if dtype.startswith("complex") else base


def op_family(op: str, inputs: int = 1) -> str:
    """Coarse kind of an op: matmul, conv, attention, norm, softmax, reduction, unary, binary, copy, ..."""
    name = aten_base_name(op)
    lowered = name.lower()
    if op.startswith("module:"):
        return MODULE_FAMILIES.get(lowered, "module")
    name = name.rstrip("_") if name.endswith("_") and name != "copy_" else name
    if name in MATMUL_OPS:
        return "matmul"
    if name in CONV_OPS:
        return "conv"
    if name in ATTENTION_OPS:
        return "attention"
    if name in NORM_OPS or name in EVAL_BATCH_NORM_OPS or name == "rms_norm":
        return "norm"
    if name in SOFTMAX_OPS:
        return "softmax"
    if name in REDUCTION_OPS:
        return "reduction"
    if name == "embedding":
        return "embedding"
    if name in GATHER_FAMILY_OPS:
        return "gather"
    if name in CAT_OPS:
        return "cat"
    if name in COPY_OPS:
        return "copy"
    if name in FACTORY_OPS:
        return "factory"
    return "binary" if inputs >= 2 else "unary"


def is_expanded(meta: TensorMeta) -> bool:
    """A broadcast view: some dimension of size > 1 has stride 0."""
    return any(stride == 0 and size > 1 for size, stride in zip(meta.shape, meta.stride, strict=False))


def is_channels_last(meta: TensorMeta) -> bool:
    """A 4-D tensor stored NHWC (channel stride 1) rather than PyTorch's default NCHW."""
    if len(meta.shape) != 4 or len(meta.stride) != 4 or meta.contiguous:
        return False
    _, channels, height, width = meta.shape
    return channels > 1 and meta.stride[1] == 1 and height * width > 1


def is_badly_laid_out(meta: TensorMeta) -> bool:
    """Non-contiguous (a strided or transposed view), expanded, or channels-last."""
    return bool(meta.stride) and math.prod(meta.shape) > 1 and not meta.contiguous


def _primary_dtype(node: OpNode) -> str:
    for meta in list(node.inputs) + list(node.outputs):
        if meta.dtype.startswith(("float", "bfloat", "complex")):
            return meta.dtype
    metas = node.outputs or node.inputs
    return metas[0].dtype if metas else "float32"


_ROW_FAMILIES = frozenset({"matmul", "conv", "attention", "norm", "softmax", "reduction", "embedding"})


def _inner_dim(node: OpNode) -> int:
    family = op_family(node.op, len(node.inputs))
    if family not in _ROW_FAMILIES or not node.inputs or not node.inputs[0].shape:
        return 0
    return int(node.inputs[0].shape[-1])


@dataclass(frozen=True)
class NodeFeatures:
    """What the regression knows about one operator call; JSON-safe (see ``to_json``)."""

    op: str  # ATen base name ("addmm") or module name
    family: str
    flops: int
    bytes: int
    out_numel: int
    dtype: str
    dtype_width: int
    noncontiguous_inputs: int  # how many tensor inputs are non-contiguous views (transposed, strided)
    expanded_inputs: int  # how many are expanded broadcast views (a stride-0 dimension)
    channels_last_inputs: int  # how many 4-D inputs are stored channels-last
    device_type: str  # "cpu" or "cuda"
    threads: int
    # The first input's last dimension where a kernel loops over it (an attention's head size, a norm's or
    # softmax's row, a matmul's rows); 0 for elementwise ops, which run over their elements flat. FLOPs and
    # bytes cannot tell 16 heads of 8 from 2 heads of 64; the kernels can: short inner loops vectorise badly
    # (a UNet's 8-wide heads cost far more per FLOP than 64-wide ones).
    inner_dim: int = 0

    @classmethod
    def of(cls, node: OpNode, threads: int) -> NodeFeatures:
        dtype = _primary_dtype(node)
        device = (node.outputs or node.inputs)[0].device if (node.outputs or node.inputs) else "cpu"
        return cls(
            op=op_variant(aten_base_name(node.op), node.scalar_args, dtype),
            family=op_family(node.op, len(node.inputs)),
            flops=int(node.flops),
            bytes=int(node.bytes),
            out_numel=sum(math.prod(meta.shape) for meta in node.outputs),
            dtype=dtype,
            dtype_width=dtype_width(dtype),
            noncontiguous_inputs=sum(1 for m in node.inputs if is_badly_laid_out(m) and not is_expanded(m)),
            expanded_inputs=sum(1 for m in node.inputs if is_expanded(m)),
            channels_last_inputs=sum(1 for m in node.inputs if is_channels_last(m)),
            device_type=device.split(":")[0],
            threads=threads,
            inner_dim=_inner_dim(node),
        )

    def ideal(self) -> NodeFeatures:
        """The same op and shape, well laid out: contiguous inputs, no broadcast views, the usual float width."""
        width = self.dtype_width
        moved = self.bytes
        if self.dtype.startswith("float") and width > USUAL_FLOAT_WIDTH:  # float64 -> float32
            moved = self.bytes * USUAL_FLOAT_WIDTH // width
            width = USUAL_FLOAT_WIDTH
        return replace(
            self,
            bytes=moved,
            dtype_width=width,
            dtype="float32" if width != self.dtype_width else self.dtype,
            noncontiguous_inputs=0,
            expanded_inputs=0,
            channels_last_inputs=0,
        )

    @property
    def well_laid_out(self) -> bool:
        return self == self.ideal()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeFeatures:
        return cls(
            op=str(data["op"]),
            family=str(data["family"]),
            flops=int(data["flops"]),
            bytes=int(data["bytes"]),
            out_numel=int(data["out_numel"]),
            dtype=str(data["dtype"]),
            dtype_width=int(data["dtype_width"]),
            noncontiguous_inputs=int(data["noncontiguous_inputs"]),
            expanded_inputs=int(data["expanded_inputs"]),
            channels_last_inputs=int(data["channels_last_inputs"]),
            device_type=str(data["device_type"]),
            threads=int(data["threads"]),
            inner_dim=int(data["inner_dim"]),
        )


NUMERIC_COLUMNS = (
    "log_flops",
    "log_bytes",
    "log_out_numel",
    "log_work",
    "dtype_width",
    "noncontiguous_inputs",
    "expanded_inputs",
    "channels_last_inputs",
    "is_cuda",
    "threads",
    "log_inner_dim",
)


@dataclass(frozen=True)
class Throughput:
    """This machine's best observed rates, so flops and bytes can be summed as seconds of work."""

    flops_per_s: float
    bytes_per_s: float

    def work_s(self, features: NodeFeatures) -> float:
        return features.flops / self.flops_per_s + features.bytes / self.bytes_per_s


def numeric_row(features: NodeFeatures, throughput: Throughput) -> list[float]:
    return [
        math.log1p(features.flops),
        math.log1p(features.bytes),
        math.log1p(features.out_numel),
        math.log(throughput.work_s(features) + 1e-9),
        float(features.dtype_width),
        float(features.noncontiguous_inputs),
        float(features.expanded_inputs),
        float(features.channels_last_inputs),
        1.0 if features.device_type == "cuda" else 0.0,
        float(features.threads),
        math.log1p(features.inner_dim),
    ]


__all__ = [
    "FEATURE_VERSION",
    "LAYOUT_FEATURES",
    "NUMERIC_COLUMNS",
    "NodeFeatures",
    "Throughput",
    "is_badly_laid_out",
    "is_channels_last",
    "is_expanded",
    "numeric_row",
    "op_family",
    "op_variant",
]
