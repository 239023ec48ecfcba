"""PyTorch #141822 recreated: cross entropy through softmax, log and nll_loss (slow variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class TokenLoss(nn.Module):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log(torch.softmax(logits, dim=-1))
        return F.nll_loss(log_probs, targets)


def workload():
    torch.manual_seed(0)
    return TokenLoss().eval(), (torch.randn(64, 8000), torch.randint(0, 8000, (64,)))
