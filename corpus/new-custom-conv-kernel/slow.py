"""New case (Magneton paper): a custom convolution kernel (im2col with unfold, then a matmul) (slow variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class Im2ColConv(nn.Module):
    def __init__(self, c_in: int = 32, c_out: int = 64, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k) / (c_in * k * k) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        columns = F.unfold(x, self.k, padding=self.k // 2)
        out = self.weight.flatten(1) @ columns
        return out.view(b, -1, h, w)


def workload():
    torch.manual_seed(0)
    return Im2ColConv().eval(), (torch.randn(4, 32, 32, 32),)
