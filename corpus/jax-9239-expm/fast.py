"""JAX #9239 recreated in PyTorch: the series degree follows the matrix norm (fast variant)."""

import math

import torch
from torch import nn

MAX_DEGREE = 18


def degree_for(norm: float, tolerance: float = 1e-7) -> int:
    """Smallest Taylor degree whose next term is below the tolerance for a matrix of this norm."""
    for degree in range(1, MAX_DEGREE + 1):
        if norm ** (degree + 1) / math.factorial(degree + 1) < tolerance:
            return degree
    return MAX_DEGREE


class Propagator(nn.Module):
    def __init__(self, norm_bound: float = 0.5) -> None:
        super().__init__()
        self.degree = degree_for(norm_bound)

    def forward(self, generator: torch.Tensor) -> torch.Tensor:
        term = torch.eye(generator.shape[-1]).expand_as(generator)
        result = term
        for k in range(1, self.degree + 1):
            term = term @ generator / k
            result = result + term
        return result


def workload():
    torch.manual_seed(0)
    generator = torch.randn(32, 64, 64)
    generator = 0.5 * generator / torch.linalg.matrix_norm(generator, keepdim=True)  # small norm, Frobenius 0.5
    return Propagator().eval(), (generator,)
