"""PyTorch #28224 recreated: wait on a blocking CUDA event, so the CPU sleeps until the GPU is done (fast variant)."""

import torch
from torch import nn


class Chain(nn.Module):
    def __init__(self, dim: int = 4096, depth: int = 8) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        done = torch.cuda.Event(blocking=True)
        done.record()
        done.synchronize()
        return x


def workload():
    torch.manual_seed(0)
    return Chain().eval().cuda(), (torch.randn(2048, 4096, device="cuda"),)
