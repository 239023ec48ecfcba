"""TensorFlow #60772 recreated in PyTorch: counting non-zeros through a widened copy (slow variant)."""

import torch
from torch import nn


class ActiveFeatures(nn.Module):
    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        return (activations != 0).to(torch.int64).sum(dim=-1)


def workload():
    torch.manual_seed(0)
    activations = torch.relu(torch.randn(256, 4096) - 0.3)  # sparse after ReLU
    return ActiveFeatures().eval(), (activations,)
