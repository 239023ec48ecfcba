"""New case (Magneton paper), Conv2D under NCHW: NHWC activations copied to NCHW around every conv (slow variant)."""

import torch
from torch import nn


class ConvBlock(nn.Module):
    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [batch, height, width, channels], as images and TF-style pipelines deliver it
        x = self.conv1(x.permute(0, 3, 1, 2).contiguous())
        x = self.conv2(torch.relu(x))
        return torch.relu(x).permute(0, 2, 3, 1).contiguous()


def workload():
    torch.manual_seed(0)
    model = ConvBlock().eval()
    return model, (torch.randn(4, 32, 32, 64),)
