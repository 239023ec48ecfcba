"""PyTorch #76012 recreated: LayerNorm over a transposed, non-contiguous view (slow variant)."""

import torch
from torch import nn


class ProjectAndNormalize(nn.Module):
    def __init__(self, channels: int = 256, features: int = 256) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, features) / features**0.5)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [batch, features, time]; the projection yields [batch, channels, time].
        h = self.weight @ x
        return self.norm(h.transpose(1, 2))


def workload():
    torch.manual_seed(0)
    return ProjectAndNormalize().eval(), (torch.randn(8, 256, 512),)
