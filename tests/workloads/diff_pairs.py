"""Synthetic pairs of programs that compute the same thing, for ``magneton diff`` tests.

Each ``*_slow`` / ``*_fast`` pair shares its weights and inputs (seeded), so the
outputs agree and the matcher's regions are known in advance.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _linear_operands() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = _seeded()
    return torch.randn(256, 128, generator=g), torch.randn(128, 64, generator=g), torch.randn(64, generator=g)


class MmAdd(nn.Module):
    """bias + mm(x, w): two operators where one does (PyTorch issue 141210)."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.register_buffer("b", b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mm(x, self.w) + self.b


class AddMm(MmAdd):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, x, self.w)


def addmm_slow() -> tuple[nn.Module, tuple[torch.Tensor]]:
    x, w, b = _linear_operands()
    return MmAdd(w, b).eval(), (x,)


def addmm_fast() -> tuple[nn.Module, tuple[torch.Tensor]]:
    x, w, b = _linear_operands()
    return AddMm(w, b).eval(), (x,)


class GeluHand(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GeluFused(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class Mlp(nn.Module):
    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.up, self.act, self.down = nn.Linear(32, 64), act, nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


def _mlp(act: nn.Module) -> tuple[nn.Module, tuple[torch.Tensor]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Mlp(act).eval()
    return model, (torch.randn(16, 32, generator=_seeded(1)),)


def gelu_slow() -> tuple[nn.Module, tuple[torch.Tensor]]:
    return _mlp(GeluHand())


def gelu_fast() -> tuple[nn.Module, tuple[torch.Tensor]]:
    return _mlp(GeluFused())


class AttentionHand(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        return torch.softmax(scores, dim=-1) @ v


class AttentionSdpa(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


def _qkv() -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(3, 2, 4, 16, 8, generator=_seeded(2)).unbind(0))


def attention_slow() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return AttentionHand().eval(), _qkv()


def attention_fast() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return AttentionSdpa().eval(), _qkv()


class SelfAttentionBHSD(nn.Module):
    """Heads as [B, H, S, D]: transpose in, matmul, transpose out."""

    heads, dim = 4, 32

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(self.dim, 3 * self.dim), nn.Linear(self.dim, self.dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, s, _ = h.shape
        d = self.dim // self.heads
        q, k, v = (t.view(b, s, self.heads, d).transpose(1, 2) for t in self.qkv(h).split(self.dim, -1))
        attention = torch.softmax(q @ k.transpose(-1, -2) * d**-0.5, dim=-1) @ v
        return self.out(attention.transpose(1, 2).reshape(b, s, self.dim))


class SelfAttentionBSHD(SelfAttentionBHSD):
    """Heads kept as [B, S, H, D]: einsum over the layout instead."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, s, _ = h.shape
        d = self.dim // self.heads
        q, k, v = (t.view(b, s, self.heads, d) for t in self.qkv(h).split(self.dim, -1))
        attention = torch.softmax(torch.einsum("bshd,bthd->bhst", q, k) * d**-0.5, dim=-1)
        return self.out(torch.einsum("bhst,bthd->bshd", attention, v).reshape(b, s, self.dim))


def _self_attention(cls: type[SelfAttentionBHSD]) -> tuple[nn.Module, tuple[torch.Tensor]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = cls().eval()
    return model, (torch.randn(2, 16, 32, generator=_seeded(3)),)


def layout_bhsd() -> tuple[nn.Module, tuple[torch.Tensor]]:
    return _self_attention(SelfAttentionBHSD)


def layout_bshd() -> tuple[nn.Module, tuple[torch.Tensor]]:
    return _self_attention(SelfAttentionBSHD)


class Twice(nn.Module):
    """A duplicated, useless branch: the same MLP twice, averaged."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.mlp(x) + self.mlp(x)) / 2


class Once(Twice):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def _twice(cls: type[Twice]) -> tuple[nn.Module, tuple[torch.Tensor]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = cls().eval()
    return model, (torch.randn(64, 32, generator=_seeded(4)),)


def duplicate_slow() -> tuple[nn.Module, tuple[torch.Tensor]]:
    return _twice(Twice)


def duplicate_fast() -> tuple[nn.Module, tuple[torch.Tensor]]:
    return _twice(Once)


def mkldnn_off() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """The same MLP built by code that turned oneDNN off (a process-wide switch)."""
    torch.backends.mkldnn.enabled = False
    return _mlp(nn.ReLU())


def mkldnn_on() -> tuple[nn.Module, tuple[torch.Tensor]]:
    return _mlp(nn.ReLU())


def different_outputs() -> tuple[nn.Module, tuple[torch.Tensor]]:
    model, args = _mlp(nn.ReLU())
    with torch.no_grad():
        model.down.bias.add_(0.5)
    return model, args


def other_inputs() -> tuple[nn.Module, tuple[torch.Tensor]]:
    model, _ = _mlp(nn.ReLU())
    return model, (torch.randn(16, 32, generator=_seeded(99)),)
