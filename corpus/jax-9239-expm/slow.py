"""JAX #9239 recreated in PyTorch: a matrix exponential that always runs its highest-degree series (slow variant)."""

import torch
from torch import nn

MAX_DEGREE = 18


class Propagator(nn.Module):
    def forward(self, generator: torch.Tensor) -> torch.Tensor:
        term = torch.eye(generator.shape[-1]).expand_as(generator)
        result = term
        for k in range(1, MAX_DEGREE + 1):
            term = term @ generator / k
            result = result + term
        return result


def workload():
    torch.manual_seed(0)
    generator = torch.randn(32, 64, 64)
    generator = 0.5 * generator / torch.linalg.matrix_norm(generator, keepdim=True)  # small norm, Frobenius 0.5
    return Propagator().eval(), (generator,)
