"""The calibration sweep: small programs covering every op family, in varied shapes, dtypes and layouts.

Each :class:`Case` is a function and its inputs. Cases are gathered into
programs that ``magneton.capture`` captures and ``run_energy_pass`` measures,
exactly as ``magneton analyze`` measures a user's program, so calibration points
and analysed nodes get their features (op names, FLOPs, bytes, layouts) from the
same code. Shapes are drawn from a seeded generator: the sweep is the same on
every run and every machine.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

# The default sweep finishes within 3 minutes on 2 cores; --quick within 30 s.
DEFAULT_SCALE = 1.0
QUICK_SCALE = 0.18
_MAX_MATMUL_FLOPS = 2**28  # ~TinyGPT's largest linear; bigger ones are extrapolated (cost ~ work)


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[..., Any]
    inputs: tuple[torch.Tensor, ...]


class SweepBuilder:
    def __init__(self, scale: float, device: str, seed: int = 0) -> None:
        self.scale, self.device = scale, device
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.cases: list[Case] = []

    def count(self, default: int) -> int:
        return max(1, round(default * self.scale))

    def tensor(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.generator).to(dtype=dtype, device=self.device)

    def dtype(self, low_precision: float = 0.15, double: float = 0.08) -> torch.dtype:
        draw = self.rng.random()
        if self.scale < 0.5:  # the quick sweep: float32 only
            return torch.float32
        if draw < low_precision:
            return torch.bfloat16 if self.device == "cpu" else torch.float16
        if draw < low_precision + double:
            return torch.float64
        return torch.float32

    def add(self, name: str, fn: Callable[..., Any], *inputs: torch.Tensor) -> None:
        self.cases.append(Case(name, fn, tuple(inputs)))

    def pick(self, values: list[int]) -> int:
        return self.rng.choice(values)

    def elements(self) -> tuple[int, int]:
        """A 2-D shape of 2^10 .. 2^22 elements."""
        rows = self.pick([8, 32, 64, 128, 256, 512, 1024, 2048])
        cols = self.pick([64, 128, 256, 512, 768, 1024, 2048])
        return rows, cols


_DIMS = [16, 32, 64, 128, 256, 384, 512, 768, 1024]


def _matmuls(b: SweepBuilder) -> None:
    for _ in range(b.count(36)):
        m, k, n = b.pick(_DIMS), b.pick(_DIMS), b.pick(_DIMS)
        while 2 * m * k * n > _MAX_MATMUL_FLOPS:
            m = max(16, m // 2)
        dtype = b.dtype()
        kind = b.rng.choice(["mm", "linear", "linear3d", "addmm", "matmul_t"])
        x, w, bias = b.tensor(m, k, dtype=dtype), b.tensor(n, k, dtype=dtype), b.tensor(n, dtype=dtype)
        if kind == "mm":
            b.add("mm", lambda x, w: torch.mm(x, w.t().contiguous()), x, w)
        elif kind == "linear":
            b.add("linear", lambda x, w, bias: F.linear(x, w, bias), x, w, bias)
        elif kind == "linear3d":
            batch = b.pick([1, 2, 4])
            x3 = b.tensor(batch, max(1, m // batch), k, dtype=dtype)
            b.add("linear3d", lambda x, w, bias: F.linear(x, w, bias), x3, w, bias)
        elif kind == "addmm":
            b.add("addmm", lambda bias, x, w: torch.addmm(bias, x, w.t()), bias, x, w)
        else:
            b.add("matmul_t", lambda x, w: x @ w.t(), x, w)
    # Matrix-vector products (a decoding step's layers, a last-position LM head): a few rows against a big
    # weight, bound by reading the weight, not by FLOPs.
    for _ in range(b.count(8)):
        m, k, n = b.pick([1, 2, 4, 8]), b.pick([128, 256, 512, 1024]), b.pick([1024, 4096, 16384, 32768])
        x, w, bias = b.tensor(m, k), b.tensor(n, k), b.tensor(n)
        b.add("linear_gemv", lambda x, w, bias: F.linear(x, w, bias), x, w, bias)
    for _ in range(b.count(10)):
        batch, m, k, n = b.pick([2, 4, 8, 16, 32]), b.pick(_DIMS[:6]), b.pick(_DIMS[:6]), b.pick(_DIMS[:6])
        dtype = b.dtype(double=0.0)
        x, y = b.tensor(batch, m, k, dtype=dtype), b.tensor(batch, k, n, dtype=dtype)
        if b.rng.random() < 0.5:
            b.add("bmm", torch.bmm, x, y)
        else:  # attention scores: q @ k^T on (B, H, T, D)
            heads, t, d = b.pick([2, 4, 8]), b.pick([32, 64, 128, 256]), b.pick([32, 64])
            q, kk = b.tensor(2, heads, t, d, dtype=dtype), b.tensor(2, heads, t, d, dtype=dtype)
            b.add("scores", lambda q, k: q @ k.transpose(-1, -2), q, kk)


def _convolutions(b: SweepBuilder) -> None:
    for _ in range(b.count(8)):
        c_in, c_out, length, k = b.pick([8, 32, 64, 128]), b.pick([16, 32, 64, 128]), b.pick([64, 256, 1024]), 3
        x, w = b.tensor(2, c_in, length), b.tensor(c_out, c_in, k)
        b.add("conv1d", lambda x, w: F.conv1d(x, w, padding=1), x, w)
    for _ in range(b.count(12)):
        c_in, c_out = b.pick([3, 16, 32, 64, 128]), b.pick([16, 32, 64, 128])
        size, k = b.pick([8, 16, 32, 64]), b.rng.choice([1, 3])
        x, w, bias = b.tensor(2, c_in, size, size), b.tensor(c_out, c_in, k, k), b.tensor(c_out)
        if b.rng.random() < 0.25 and b.scale >= 0.5:
            x = x.contiguous(memory_format=torch.channels_last)
        b.add("conv2d", lambda x, w, bias, k=k: F.conv2d(x, w, bias, padding=k // 2), x, w, bias)


_UNARY: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
    ("gelu", F.gelu),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    ("relu", torch.relu),
    ("silu", F.silu),
    ("tanh", torch.tanh),
    ("exp", torch.exp),
    ("sigmoid", torch.sigmoid),
    ("neg", torch.neg),
    ("rsqrt", lambda x: torch.rsqrt(x.abs() + 1)),
    ("erf", torch.erf),
    ("mul_scalar", lambda x: x * 0.5),
    ("add_scalar", lambda x: x + 1.0),
    ("pow", lambda x: x.pow(2)),
    ("pow3", lambda x: x.pow(3.0)),
    ("sin", torch.sin),
    ("cos", torch.cos),
]
_BINARY: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = [
    ("add", torch.add),
    ("mul", torch.mul),
    ("sub", torch.sub),
    ("div", torch.div),
    ("maximum", torch.maximum),
    ("where", lambda x, y: torch.where(x > 0, x, y)),
    ("masked_fill", lambda x, y: x.masked_fill(y > 0, -1e4)),
    ("le", torch.le),
]
# Element counts of the size ladder: every elementwise op is measured across the whole range, so the
# regression learns each op's own cost per element (a tanh costs ~10x a mul here) rather than its family's.
_LADDER = [2**8, 2**11, 2**14, 2**16, 2**18, 2**20, 2**22]


def _shape_of(b: SweepBuilder, elements: int) -> tuple[int, ...]:
    """A 2-D or 3-D (batch, tokens, hidden) shape holding about ``elements`` elements."""
    hidden = b.pick([64, 128, 256, 512, 768, 1024])
    hidden = min(hidden, elements)
    rows = max(1, elements // hidden)
    if rows >= 4 and b.rng.random() < 0.5:
        batch = b.pick([2, 4])
        return (batch, max(1, rows // batch), hidden)
    return (rows, hidden)


def _ladder(b: SweepBuilder) -> list[int]:
    """The size ladder; the quick sweep keeps three rungs (its time goes to the biggest ones)."""
    return _LADDER if b.scale >= 0.5 else [2**8, 2**14, 2**18]


def _elementwise(b: SweepBuilder) -> None:
    for name, fn in _UNARY:
        for elements in _ladder(b):
            b.add(name, fn, b.tensor(*_shape_of(b, elements)))
    for name, binary in _BINARY:
        for elements in _ladder(b):
            shape = _shape_of(b, elements)
            b.add(name, binary, b.tensor(*shape), b.tensor(*shape))
    # Layout and dtype variants: what the layout features explain (never what expected energy excuses).
    for _ in range(b.count(24)):
        name, fn = b.rng.choice(_UNARY)
        rows, cols = b.elements()
        dtype = b.dtype()
        layout = b.rng.choice(["contiguous", "transposed", "strided"])
        x = b.tensor(cols, rows, dtype=dtype) if layout == "transposed" else b.tensor(rows, cols, dtype=dtype)
        if layout == "transposed":
            b.add(f"{name}_t", lambda x, fn=fn: fn(x.t()), x)
        elif layout == "strided":
            x = b.tensor(rows, 2 * cols, dtype=dtype)
            b.add(f"{name}_strided", lambda x, fn=fn: fn(x[:, ::2]), x)
        else:
            b.add(name, fn, x)
    for _ in range(b.count(32)):
        name, binary = b.rng.choice(_BINARY)
        rows, cols = b.elements()
        dtype = b.dtype()
        layout = b.rng.choice(["same", "row", "column", "transposed", "scalar"])
        x = b.tensor(rows, cols, dtype=dtype)
        if layout == "row":
            b.add(f"{name}_row", binary, x, b.tensor(1, cols, dtype=dtype))
        elif layout == "column":
            b.add(f"{name}_col", binary, x, b.tensor(rows, 1, dtype=dtype))
        elif layout == "transposed":
            b.add(f"{name}_t", lambda x, y, fn=binary: fn(x, y.t()), x, b.tensor(cols, rows, dtype=dtype))
        elif layout == "scalar":
            b.add(f"{name}_scalar", binary, x, b.tensor(dtype=dtype))
        else:
            b.add(name, binary, x, b.tensor(rows, cols, dtype=dtype))


def _small_and_integer(b: SweepBuilder) -> None:
    """The glue of real models: position ids, causal masks, tensor factories, integer arithmetic."""
    for length in [1, 16, 128, 512, 2048][: b.count(5)]:
        ids = torch.arange(length, device=b.device)
        b.add("arange", lambda x: torch.arange(x.shape[0], device=x.device), ids)
        b.add("add_int", lambda x: x + 2, ids)
        b.add("zeros", lambda x: torch.zeros(x.shape[0], 64, device=x.device), ids)
        b.add("full", lambda x: torch.full((x.shape[0], x.shape[0] // 8 + 1), -1e4, device=x.device), ids)
        row = b.tensor(1, 1, 1, length)
        column = b.tensor(1, 1, length, 1)
        b.add("le_mask", torch.le, row, column)
        b.add("ge_mask", lambda x: x >= 0, column)


def _reductions_and_norms(b: SweepBuilder) -> None:
    reductions: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
        ("sum", lambda x: x.sum(-1)),
        ("mean", lambda x: x.mean(-1, keepdim=True)),
        ("amax", lambda x: x.amax(-1)),
        ("sum0", lambda x: x.sum(0)),
        ("var", lambda x: x.var(-1)),
    ]
    for _ in range(b.count(14)):
        name, fn = b.rng.choice(reductions)
        b.add(name, fn, b.tensor(*b.elements()))
    for _ in range(b.count(14)):
        rows, cols = b.elements()
        log = b.rng.random() < 0.3
        fn = F.log_softmax if log else F.softmax
        if b.rng.random() < 0.25:
            b.add("softmax_t", lambda x, fn=fn: fn(x.t(), dim=-1), b.tensor(cols, rows))
        elif b.rng.random() < 0.3:  # attention-shaped
            heads, t = b.pick([2, 4, 8]), b.pick([32, 64, 128, 256])
            b.add("softmax4d", lambda x, fn=fn: fn(x, dim=-1), b.tensor(2, heads, t, t))
        else:
            b.add("softmax", lambda x, fn=fn: fn(x, dim=-1), b.tensor(rows, cols))
    for _ in range(b.count(16)):
        rows, hidden = b.pick([32, 128, 256, 512, 1024, 2048]), b.pick([64, 128, 256, 384, 512, 768, 1024])
        weight, bias = b.tensor(hidden), b.tensor(hidden)
        kind = b.rng.choice(["ln", "ln", "ln_t", "rms", "ln3d"])
        if kind == "ln":
            b.add(
                "layer_norm",
                lambda x, w, bb: F.layer_norm(x, x.shape[-1:], w, bb),
                b.tensor(rows, hidden),
                weight,
                bias,
            )
        elif kind == "ln3d":
            x3 = b.tensor(2, max(1, rows // 2), hidden)
            b.add("layer_norm3d", lambda x, w, bb: F.layer_norm(x, x.shape[-1:], w, bb), x3, weight, bias)
        elif kind == "ln_t":
            b.add(
                "layer_norm_t",
                lambda x, w, bb: F.layer_norm(x.t(), x.shape[:1], w, bb),
                b.tensor(hidden, rows),
                weight,
                bias,
            )
        else:
            b.add("rms_norm", lambda x, w: F.rms_norm(x, x.shape[-1:], w), b.tensor(rows, hidden), weight)
    for _ in range(b.count(6)):
        channels, size = b.pick([32, 64, 128]), b.pick([8, 16, 32])
        w, bias = b.tensor(channels), b.tensor(channels)
        b.add("group_norm", lambda x, w, bb: F.group_norm(x, 8, w, bb), b.tensor(2, channels, size, size), w, bias)


def _copies(b: SweepBuilder) -> None:
    for _ in range(b.count(24)):
        rows, cols = b.elements()
        kind = b.rng.choice(["clone", "contiguous_t", "to_dtype", "cat", "index_select", "gather", "index", "repeat"])
        x = b.tensor(rows, cols)
        if kind == "clone":
            b.add("clone", lambda x: x.clone(), x)
        elif kind == "contiguous_t":
            b.add("contiguous_t", lambda x: x.t().contiguous(), x)
        elif kind == "to_dtype":
            b.add("to_dtype", lambda x: x.to(torch.bfloat16), x)
        elif kind == "cat":
            parts = b.pick([2, 3])
            b.add("cat", lambda *xs: torch.cat(xs, dim=-1), *[b.tensor(rows, cols) for _ in range(parts)])
        elif kind == "index_select":
            idx = torch.randint(0, rows, (max(1, rows // 2),), generator=b.generator).to(b.device)
            b.add("index_select", lambda x, i: torch.index_select(x, 0, i), x, idx)
        elif kind == "gather":
            idx = torch.randint(0, cols, (rows, max(1, cols // 4)), generator=b.generator).to(b.device)
            b.add("gather", lambda x, i: torch.gather(x, 1, i), x, idx)
        elif kind == "index":
            idx = torch.randint(0, rows, (max(1, rows // 2),), generator=b.generator).to(b.device)
            b.add("index", lambda x, i: x[i], x, idx)
        else:
            b.add("repeat", lambda x: x[:1].repeat(x.shape[0], 1), x)


def _embeddings_and_attention(b: SweepBuilder) -> None:
    for _ in range(b.count(8)):
        vocab, dim, tokens = b.pick([512, 2048, 8192, 30522]), b.pick([64, 128, 256, 512, 768]), b.pick([64, 256, 1024])
        table = b.tensor(vocab, dim)
        ids = torch.randint(0, vocab, (2, tokens // 2), generator=b.generator).to(b.device)
        b.add("embedding", F.embedding, ids, table)
    # Head sizes from a diffusers UNet's 8 to a language model's 64; sequences from 16 tokens (many short
    # sequences in a batch: per-row overhead, not FLOPs, sets the cost) to 256.
    for _ in range(b.count(24)):
        heads, t, d = b.pick([2, 4, 8, 12]), b.pick([16, 32, 64, 128, 256]), b.pick([8, 16, 32, 64])
        batch = b.pick([1, 2, 8, 32, 128])
        while batch > 1 and batch * heads * t * t * d > 2**24:
            batch //= 2
        q, k, v = (b.tensor(batch, heads, t, d) for _ in range(3))
        kind = b.rng.choice(["plain", "causal", "masked"])
        if kind == "masked":  # an additive mask, as transformers builds one (causal or padding)
            mask = b.tensor(batch, 1, t, t)
            b.add("sdpa_mask", lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), q, k, v, mask)
        else:
            causal = kind == "causal"
            b.add("sdpa", lambda q, k, v, c=causal: F.scaled_dot_product_attention(q, k, v, is_causal=c), q, k, v)


def build_sweep(scale: float, device: str = "cpu", seed: int = 0) -> list[Case]:
    """Every family the issue names: matmuls, convolutions, elementwise, reductions, norms, copies, attention."""
    builder = SweepBuilder(scale, device, seed)
    for add_family in (
        _matmuls,
        _convolutions,
        _elementwise,
        _small_and_integer,
        _reductions_and_norms,
        _copies,
        _embeddings_and_attention,
    ):
        add_family(builder)
    return builder.cases


class SweepProgram(torch.nn.Module):
    """Runs a list of cases on one flat list of inputs: one capturable program per chunk of the sweep."""

    def __init__(self, cases: list[Case]) -> None:
        super().__init__()
        self.fns = [case.fn for case in cases]
        self.arities = [len(case.inputs) for case in cases]

    def forward(self, *flat: torch.Tensor) -> tuple[Any, ...]:
        outputs, start = [], 0
        for fn, arity in zip(self.fns, self.arities, strict=True):
            outputs.append(fn(*flat[start : start + arity]))
            start += arity
        return tuple(outputs)


def chunks(cases: list[Case], size: int) -> list[list[Case]]:
    return [cases[i : i + size] for i in range(0, len(cases), size)]


__all__ = ["DEFAULT_SCALE", "QUICK_SCALE", "Case", "SweepProgram", "build_sweep", "chunks"]
