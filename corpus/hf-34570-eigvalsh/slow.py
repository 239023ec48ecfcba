"""transformers #34570 recreated: eigenvalues of symmetric matrices with the general solver (slow variant)."""

import torch
from torch import nn


class Spectrum(nn.Module):
    def forward(self, covariance: torch.Tensor) -> torch.Tensor:
        eigenvalues = torch.linalg.eigvals(covariance)
        return eigenvalues.real.sort(dim=-1).values


def workload():
    torch.manual_seed(0)
    x = torch.randn(16, 48, 96)
    covariance = x @ x.mT / 96  # symmetric positive semi-definite
    return Spectrum().eval(), (covariance,)
