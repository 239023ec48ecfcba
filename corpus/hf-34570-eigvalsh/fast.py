"""transformers #34570 recreated: eigvalsh for the symmetric covariance matrix (fast variant)."""

import torch
from torch import nn


class Spectrum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centered = x - x.mean(dim=-2, keepdim=True)
        covariance = centered.mT @ centered / x.shape[-2]  # symmetric positive semi-definite
        return torch.linalg.eigvalsh(covariance)  # real, ascending


def workload():
    torch.manual_seed(0)
    return Spectrum().eval(), (torch.randn(16, 96, 48),)
