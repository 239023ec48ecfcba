"""PyTorch #28224 recreated: the CPU spins at full power while it waits for the GPU (slow variant, CUDA + CPU energy).

torch.cuda.synchronize() busy-waits by default; the GPU work is the same in both variants.
"""

import torch
from torch import nn


class Chain(nn.Module):
    def __init__(self, dim: int = 4096, depth: int = 8) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        torch.cuda.synchronize()
        return x


def workload():
    torch.manual_seed(0)
    return Chain().eval().cuda(), (torch.randn(2048, 4096, device="cuda"),)
