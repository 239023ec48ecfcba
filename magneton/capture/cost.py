"""What an operator call costs in work: floating-point operations and bytes moved.

FLOPs are counted at the ATen level while the node runs once during annotation:
a dispatch mode sees every ATen op the node decomposes into (``linear`` ->
``addmm``, ``rms_norm`` -> pow, mean, rsqrt, mul), so nodes captured at any level
(export's ATen ops, fx modules) get the same count. For each ATen op the formula
is ``torch.utils.flop_counter``'s where it has one (matmuls, convolutions, CUDA
attention kernels), else one of ours below. Conventions for ours (the tests check
them against hand-computed values):

- attention: the two matmuls, ``2*B*L*S*E + 2*B*L*S*Ev`` (as flop_counter counts its
  attention kernels; the softmax in between is not counted, causal masks not halved);
- softmax / log_softmax: 5 per element (max, subtract, exp, sum, divide or log);
- layer/group norm: 7 per element (mean, centre, square and sum, scale, affine mul and add);
  batch norm in eval (running statistics): 2 per element;
- pointwise ops (ATen's ``pointwise`` tag): 1 per output element;
- reductions: 1 per input element;
- copies, indexing, concatenation, factories: 0.

Bytes are read + written as the tensors' metadata says: every output element is
written once; an input is read once per *distinct* element (an expanded operand's
stride-0 dimensions are read once, not per broadcast copy); a gathering op (embedding,
index_select, gather, index) reads as many source elements as it writes. Views and
other zero-cost nodes move nothing.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from magneton.graph import OpNode, TensorMeta

ATTENTION_OPS = frozenset(
    {
        "scaled_dot_product_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_attention_math",
        "_scaled_dot_product_fused_attention_overrideable",
    }
)
SOFTMAX_OPS = frozenset({"_softmax", "softmax", "_log_softmax", "log_softmax", "_safe_softmax"})
NORM_OPS = frozenset({"native_layer_norm", "layer_norm", "native_group_norm", "group_norm", "_fused_rms_norm"})
EVAL_BATCH_NORM_OPS = frozenset(
    {"_native_batch_norm_legit_no_training", "native_batch_norm", "batch_norm", "_batch_norm_with_update"}
)
REDUCTION_OPS = frozenset(
    {
        "sum",
        "mean",
        "amax",
        "amin",
        "max",
        "min",
        "prod",
        "var",
        "std",
        "var_mean",
        "std_mean",
        "norm",
        "linalg_vector_norm",
        "logsumexp",
        "argmax",
        "argmin",
        "any",
        "all",
        "cumsum",
        "cumprod",
    }
)
GATHER_OPS = frozenset({"embedding", "index_select", "gather", "index", "take", "embedding_bag", "_embedding_bag"})
SOFTMAX_FLOPS_PER_ELEMENT = 5
NORM_FLOPS_PER_ELEMENT = 7
EVAL_BATCH_NORM_FLOPS_PER_ELEMENT = 2


def aten_base_name(op: str) -> str:
    """``aten.addmm.default`` -> ``addmm``; ``module:Linear`` -> ``Linear``; ``torch.nn.functional.gelu``: ``gelu``."""
    if op.startswith("module:"):
        return op.removeprefix("module:")
    parts = op.split(".")
    if parts[0] == "aten" and len(parts) >= 2:
        return parts[1]
    return parts[-1]


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(size) for size in shape)


def attention_flops(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """``q @ k^T`` then ``attn @ v``: 2*B*L*S*E + 2*B*L*S*Ev (B: every leading dimension of q)."""
    *batch, length, embed = q_shape
    source = k_shape[-2]
    value_embed = v_shape[-1]
    batch_size = _numel(batch)
    return 2 * batch_size * length * source * embed + 2 * batch_size * length * source * value_embed


def aten_flops(func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    """FLOPs of one ATen op call: flop_counter's formula when it has one, ours otherwise (see module doc)."""
    import torch
    from torch.utils.flop_counter import flop_registry

    from magneton.capture.values import tensor_leaves

    packet = func.overloadpacket
    formula = flop_registry.get(packet)
    if formula is not None:
        return int(formula(*args, **kwargs, out_val=out))
    name = packet.__name__
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    outputs = tensor_leaves(out)
    if name in ATTENTION_OPS and len(tensors) >= 3:
        return attention_flops(tensors[0].shape, tensors[1].shape, tensors[2].shape)
    if name in SOFTMAX_OPS and tensors:
        return SOFTMAX_FLOPS_PER_ELEMENT * tensors[0].numel()
    if name in NORM_OPS and tensors:
        return NORM_FLOPS_PER_ELEMENT * tensors[0].numel()
    if name in EVAL_BATCH_NORM_OPS and tensors:
        return EVAL_BATCH_NORM_FLOPS_PER_ELEMENT * tensors[0].numel()
    if name in REDUCTION_OPS and tensors:
        return tensors[0].numel()
    if torch.Tag.pointwise in getattr(func, "tags", ()) and outputs:
        return outputs[0].numel()
    return 0


class FlopCounter:
    """Counts the FLOPs of every ATen op run inside ``with FlopCounter() as counter:``."""

    def __init__(self) -> None:
        self.flops = 0
        self._mode: Any = None

    def __enter__(self) -> FlopCounter:
        from magneton.capture.torch_compat import TorchDispatchMode

        counter = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                # A formula that cannot read these arguments must not break the capture.
                with contextlib.suppress(Exception):
                    counter.flops += aten_flops(func, args, kwargs, out)
                return out

        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)


_DTYPE_WIDTHS: dict[str, int] = {}


def dtype_width(dtype: str) -> int:
    """Bytes per element of a dtype named as TensorMeta names it (``float32``, ``bfloat16``, ``bool``)."""
    width = _DTYPE_WIDTHS.get(dtype)
    if width is None:
        import torch

        torch_dtype = getattr(torch, dtype, None)
        width = torch_dtype.itemsize if isinstance(torch_dtype, torch.dtype) else 4
        _DTYPE_WIDTHS[dtype] = width
    return width


def distinct_elements(meta: TensorMeta) -> int:
    """Elements of a tensor that live at distinct addresses: an expanded (stride-0) dimension counts once."""
    if not meta.stride:
        return _numel(meta.shape)
    sizes = [size if stride != 0 else min(size, 1) for size, stride in zip(meta.shape, meta.stride, strict=False)]
    return _numel(sizes)


def bytes_moved(op: str, inputs: Sequence[TensorMeta], outputs: Sequence[TensorMeta]) -> int:
    """Bytes read + written by one call (see the module doc for the conventions)."""
    written = sum(_numel(meta.shape) * dtype_width(meta.dtype) for meta in outputs)
    reads = [distinct_elements(meta) * dtype_width(meta.dtype) for meta in inputs]
    name = aten_base_name(op).lower()
    if name in GATHER_OPS and inputs and outputs:
        # Only the gathered rows of the source (input 0: the table, self) are read: as many elements as written.
        reads[0] = min(reads[0], _numel(outputs[0].shape) * dtype_width(inputs[0].dtype))
    return written + sum(reads)


def set_cost(node: OpNode, flops: int) -> None:
    """Store a node's FLOPs (counted while it ran) and bytes (from its metadata); zero-cost nodes get zero."""
    if node.zero_cost:
        node.flops, node.bytes = 0, 0
        return
    if aten_base_name(node.op) in ATTENTION_OPS and len(node.inputs) >= 3:
        # Which kernel runs (flash, or the math path's scale, bmm, softmax, bmm) must not change the count.
        q, k, v = node.inputs[:3]
        flops = attention_flops(q.shape, k.shape, v.shape)
    node.flops = int(flops)
    node.bytes = bytes_moved(node.op, node.inputs, node.outputs)


__all__ = [
    "FlopCounter",
    "aten_base_name",
    "aten_flops",
    "attention_flops",
    "bytes_moved",
    "distinct_elements",
    "dtype_width",
    "set_cost",
]
