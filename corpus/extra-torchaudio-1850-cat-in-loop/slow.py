"""torchaudio #1850 recreated: the output grows by torch.cat inside the loop, copied again every step (slow variant)."""

import torch
from torch import nn


class ChunkedProjection(nn.Module):
    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        out = chunks.new_empty(0, chunks.shape[-1])
        for chunk in chunks.unbind(0):
            out = torch.cat([out, self.proj(chunk)])
        return out


def workload():
    torch.manual_seed(0)
    return ChunkedProjection().eval(), (torch.randn(48, 64, 64),)
