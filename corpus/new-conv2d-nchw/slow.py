"""New case (Magneton paper): a conv block run in the default NCHW layout (slow variant)."""

import torch
from torch import nn


class ConvBlock(nn.Module):
    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        return torch.relu(self.conv2(x))


def workload():
    torch.manual_seed(0)
    model = ConvBlock().eval()
    images = torch.randn(4, 64, 32, 32)
    return model, (images,)
