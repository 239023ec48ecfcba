"""TensorFlow #60772 recreated in PyTorch: torch.count_nonzero (fast variant)."""

import torch
from torch import nn


class ActiveFeatures(nn.Module):
    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        return torch.count_nonzero(activations, dim=-1)


def workload():
    torch.manual_seed(0)
    activations = torch.relu(torch.randn(512, 4096) - 0.3)  # sparse after ReLU
    return ActiveFeatures().eval(), (activations,)
