"""New case (Magneton paper): the library convolution (fast variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class Im2ColConv(nn.Module):
    def __init__(self, c_in: int = 32, c_out: int = 64, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k) / (c_in * k * k) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=self.k // 2)


def workload():
    torch.manual_seed(0)
    return Im2ColConv().eval(), (torch.randn(4, 32, 32, 32),)
