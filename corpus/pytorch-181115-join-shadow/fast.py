"""PyTorch #181115 recreated on one process: only the real rows are computed (fast variant)."""

import torch
from torch import nn


class Step(nn.Module):
    def __init__(self, dim: int = 256, padded_rows: int = 96) -> None:
        super().__init__()
        self.padded_rows = padded_rows
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.mlp(rows)


def workload():
    torch.manual_seed(0)
    return Step().eval(), (torch.randn(32, 256),)
