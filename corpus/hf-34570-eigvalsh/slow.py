"""transformers #34570 recreated: eigenvalues of a covariance matrix with the general solver (slow variant).

As in transformers' mean-resizing of embeddings: the covariance is built, then checked with ``eigvals``.
"""

import torch
from torch import nn


class Spectrum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centered = x - x.mean(dim=-2, keepdim=True)
        covariance = centered.mT @ centered / x.shape[-2]  # symmetric positive semi-definite
        eigenvalues = torch.linalg.eigvals(covariance)
        return eigenvalues.real.sort(dim=-1).values


def workload():
    torch.manual_seed(0)
    return Spectrum().eval(), (torch.randn(16, 96, 48),)
