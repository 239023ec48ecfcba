"""PyTorch #76012 recreated: LayerNorm reads contiguous rows of [batch, time, channels] (fast variant)."""

import torch
from torch import nn


class ProjectAndNormalize(nn.Module):
    def __init__(self, channels: int = 256, features: int = 256) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, features) / features**0.5)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [batch, features, time]; the projection yields [batch, time, channels] directly.
        h = x.transpose(1, 2) @ self.weight.t()
        return self.norm(h)


def workload():
    torch.manual_seed(0)
    return ProjectAndNormalize().eval(), (torch.randn(8, 256, 512),)
