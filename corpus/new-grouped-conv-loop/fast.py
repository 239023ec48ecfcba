"""New case (Magneton paper): one grouped convolution call (fast variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class GroupedConv(nn.Module):
    def __init__(self, channels: int = 128, groups: int = 32) -> None:
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.randn(channels, channels // groups, 3, 3) / 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=1, groups=self.groups)


def workload():
    torch.manual_seed(0)
    return GroupedConv().eval(), (torch.randn(4, 128, 16, 16),)
