"""PyTorch #181115 recreated on one process: a rank that ran out of data keeps computing shadow work (slow variant).

With uneven inputs, ``dist.Join`` keeps a finished rank in step by running shadow
collectives. Recreated here as a step that pads the real rows with a dummy batch,
runs the model on all of it and throws the dummy rows away.
"""

import torch
from torch import nn


class Step(nn.Module):
    def __init__(self, dim: int = 256, padded_rows: int = 96) -> None:
        super().__init__()
        self.padded_rows = padded_rows
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        shadow = rows.new_zeros(self.padded_rows - rows.shape[0], rows.shape[1])
        out = self.mlp(torch.cat([rows, shadow]))
        return out[: rows.shape[0]]


def workload():
    torch.manual_seed(0)
    return Step().eval(), (torch.randn(32, 256),)
