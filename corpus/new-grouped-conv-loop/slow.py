"""New case (Magneton paper): a grouped convolution written as a Python loop over the groups (slow variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class GroupedConv(nn.Module):
    def __init__(self, channels: int = 128, groups: int = 32) -> None:
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.randn(channels, channels // groups, 3, 3) / 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = zip(x.chunk(self.groups, dim=1), self.weight.chunk(self.groups, dim=0), strict=True)
        return torch.cat([F.conv2d(xg, wg, padding=1) for xg, wg in pieces], dim=1)


def workload():
    torch.manual_seed(0)
    return GroupedConv().eval(), (torch.randn(4, 128, 16, 16),)
