"""TensorFlow #60772 recreated in PyTorch: counting non-zeros through a materialised 0/1 copy (slow variant)."""

import torch
from torch import nn


class ActiveFeatures(nn.Module):
    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        nonzero = torch.where(activations != 0, torch.ones_like(activations), torch.zeros_like(activations))
        return nonzero.sum(dim=-1)


def workload():
    torch.manual_seed(0)
    activations = torch.relu(torch.randn(512, 4096) - 0.3)  # sparse after ReLU
    return ActiveFeatures().eval(), (activations,)
