"""SGLang #5128 recreated: top-k sampling candidates by sorting the whole vocabulary (slow variant)."""

import torch
from torch import nn


class TopKSampler(nn.Module):
    def __init__(self, k: int = 50) -> None:
        super().__init__()
        self.k = k

    def forward(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, indices = torch.sort(logits, dim=-1, descending=True)
        return values[:, : self.k], indices[:, : self.k]


def workload():
    torch.manual_seed(0)
    return TopKSampler().eval(), (torch.randn(8, 32000),)
