"""PyTorch #141210 recreated: a bias added after the matmul instead of one fused addmm (slow variant)."""

import torch
from torch import nn


class Projection(nn.Module):
    def __init__(self, d_in: int = 32, d_out: int = 1024) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / d_in**0.5)
        self.bias = nn.Parameter(torch.randn(d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t() + self.bias


def workload():
    torch.manual_seed(0)
    return Projection().eval(), (torch.randn(2048, 32),)
