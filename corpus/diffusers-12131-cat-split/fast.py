"""diffusers #12131 recreated: each stream goes straight to its own norm (fast variant)."""

import torch
from torch import nn


class JointNorm(nn.Module):
    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.norm_image = nn.LayerNorm(dim)
        self.norm_text = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.norm_image(image), self.norm_text(text)


def workload():
    torch.manual_seed(0)
    return JointNorm().eval(), (torch.randn(4, 512, 256), torch.randn(4, 77, 256))
