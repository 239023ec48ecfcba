"""torchaudio #1850 recreated: the pieces are collected and concatenated once (fast variant)."""

import torch
from torch import nn


class ChunkedProjection(nn.Module):
    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.proj(chunk) for chunk in chunks.unbind(0)])


def workload():
    torch.manual_seed(0)
    return ChunkedProjection().eval(), (torch.randn(48, 64, 64),)
