"""SGLang #5128 recreated: top-k sampling candidates with torch.topk (fast variant)."""

import torch
from torch import nn


class TopKSampler(nn.Module):
    def __init__(self, k: int = 50) -> None:
        super().__init__()
        self.k = k

    def forward(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, indices = torch.topk(logits, self.k, dim=-1)
        return values, indices


def workload():
    torch.manual_seed(0)
    return TopKSampler().eval(), (torch.randn(8, 32000),)
