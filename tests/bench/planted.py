"""Eight planted layout anomalies for bench_expected.py; ``# planted: NAME`` marks the line to be flagged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TransposedCopyMatmul(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1024, 1024) / 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight_t = self.weight.t().contiguous()  # planted: transposed-copy-mm
        return x @ weight_t


class TransposedCopyBmm(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        b_t = b.transpose(1, 2).contiguous()  # planted: transposed-copy-bmm
        return torch.bmm(a, b_t)


class StridedLayerNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)) * 2  # planted: strided-layer-norm


class StridedRmsNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.transpose(1, 2), (512,)) * 2  # planted: strided-rms-norm


class StridedSoftmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x.transpose(1, 2), dim=-1) * 2  # planted: strided-softmax


class StridedGelu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x[:, ::8]) * 2  # planted: strided-gelu


class MaterialisedBroadcastAdd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(2048))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.expand(x.shape[0], -1).contiguous()  # planted: materialised-expand
        return x + bias


class MaterialisedRepeatMul(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.randn(1, 2048))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale.repeat(x.shape[0], 1)  # planted: materialised-repeat
        return x * scale


def _seeded(module: nn.Module) -> nn.Module:
    return module.eval()


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


WORKLOADS = {
    "transposed-copy-mm": lambda: (_seeded(TransposedCopyMatmul()), (_randn(64, 1024),)),
    "transposed-copy-bmm": lambda: (_seeded(TransposedCopyBmm()), (_randn(16, 32, 256), _randn(16, 256, 256))),
    "strided-layer-norm": lambda: (_seeded(StridedLayerNorm()), (_randn(8, 512, 256),)),
    "strided-rms-norm": lambda: (_seeded(StridedRmsNorm()), (_randn(8, 512, 256),)),
    "strided-softmax": lambda: (_seeded(StridedSoftmax()), (_randn(8, 512, 256),)),
    "strided-gelu": lambda: (_seeded(StridedGelu()), (_randn(256, 8192),)),
    "materialised-expand": lambda: (_seeded(MaterialisedBroadcastAdd()), (_randn(1024, 2048),)),
    "materialised-repeat": lambda: (_seeded(MaterialisedRepeatMul()), (_randn(1024, 2048),)),
}
