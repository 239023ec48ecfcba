"""diffusers #12131 recreated: two token streams concatenated and split again right away (slow variant)."""

import torch
from torch import nn


class JointNorm(nn.Module):
    def __init__(self, dim: int = 256) -> None:
        super().__init__()
        self.norm_image = nn.LayerNorm(dim)
        self.norm_text = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        joint = torch.cat([image, text], dim=1)
        image, text = joint.split([image.shape[1], text.shape[1]], dim=1)
        return self.norm_image(image), self.norm_text(text)


def workload():
    torch.manual_seed(0)
    return JointNorm().eval(), (torch.randn(4, 512, 256), torch.randn(4, 77, 256))
