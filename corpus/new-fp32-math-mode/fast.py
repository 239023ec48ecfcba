"""New case (Magneton paper): float32 matmul precision "high": matmuls on TF32 tensor cores (fast variant, CUDA)."""

import torch
from torch import nn


class FeedForward(nn.Module):
    def __init__(self, dim: int = 2048, hidden: int = 8192) -> None:
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.nn.functional.gelu(self.up(x)))


def workload():
    torch.set_float32_matmul_precision("high")
    torch.manual_seed(0)
    return FeedForward().eval().cuda(), (torch.randn(4096, 2048, device="cuda"),)
