"""Small models with one planted layout waste each; ``# planted: NAME`` marks the line to be flagged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TransposedCopyMatmul(nn.Module):
    """A matmul fed a transposed copy of its weight, made on every call."""

    def __init__(self, features: int = 512) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features, features) / features**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight_t = self.weight.t().contiguous()  # planted: transposed-copy
        return torch.relu(x @ weight_t)


class StridedNorm(nn.Module):
    """A layer norm over a transposed (strided) view: the kernel gathers every row."""

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        self.proj = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, channels, time)
        h = x.transpose(1, 2)
        h = self.norm(h)  # planted: strided-norm
        return self.proj(h)


class MaterialisedBroadcast(nn.Module):
    """An elementwise add on a broadcast operand that was materialised first."""

    def __init__(self, features: int = 1024) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.expand(x.shape[0], -1).contiguous()  # planted: materialised-broadcast
        return F.gelu(x + bias)


class Clean(nn.Module):
    """The same computations, well laid out: nothing to flag."""

    def __init__(self, features: int = 512) -> None:
        super().__init__()
        self.linear = nn.Linear(features, features)
        self.norm = nn.LayerNorm(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.relu(self.linear(x)) + x)


class Activated(nn.Module):
    """A linear layer and an activation: the activation's op decides whether the regression may judge it."""

    def __init__(self, activation: nn.Module, features: int = 512) -> None:
        super().__init__()
        self.linear = nn.Linear(features, features)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


def gelu():
    return Activated(nn.GELU()).eval(), (torch.randn(64, 512),)


def tanh():
    return Activated(nn.Tanh()).eval(), (torch.randn(64, 512),)


def transposed_copy():
    return TransposedCopyMatmul().eval(), (torch.randn(64, 512),)


def strided_norm():
    return StridedNorm().eval(), (torch.randn(8, 256, 128),)


def materialised_broadcast():
    return MaterialisedBroadcast().eval(), (torch.randn(512, 1024),)


def clean():
    return Clean().eval(), (torch.randn(64, 512),)
