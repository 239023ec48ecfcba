"""New case (Magneton paper), Conv2D under NCHW: channels_last weights read NHWC as it is (fast variant)."""

import torch
from torch import nn


class ConvBlock(nn.Module):
    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [batch, height, width, channels], as images and TF-style pipelines deliver it
        x = self.conv1(x.permute(0, 3, 1, 2))  # a channels_last view, no copy
        x = self.conv2(torch.relu(x))
        return torch.relu(x).permute(0, 2, 3, 1)


def workload():
    torch.manual_seed(0)
    model = ConvBlock().eval().to(memory_format=torch.channels_last)
    return model, (torch.randn(4, 32, 32, 64),)
