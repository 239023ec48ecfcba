"""torch.linalg.inv docs recreated: linear systems solved via an explicit inverse and a matmul (slow variant)."""

import torch
from torch import nn


class LinearSolve(nn.Module):
    def forward(self, system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        return torch.linalg.inv(system) @ rhs


def workload():
    torch.manual_seed(0)
    x = torch.randn(32, 128, 128)
    system = x @ x.mT / 128 + torch.eye(128)  # well conditioned
    return LinearSolve().eval(), (system, torch.randn(32, 128, 16))
