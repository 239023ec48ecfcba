"""transformers #34570 recreated: eigvalsh for symmetric matrices (fast variant)."""

import torch
from torch import nn


class Spectrum(nn.Module):
    def forward(self, covariance: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigvalsh(covariance)  # real, ascending


def workload():
    torch.manual_seed(0)
    x = torch.randn(16, 48, 96)
    covariance = x @ x.mT / 96  # symmetric positive semi-definite
    return Spectrum().eval(), (covariance,)
